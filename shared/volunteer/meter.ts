// Measures a volunteer from the outside: wraps the Trainer the loop trains with and the fetch it talks
// through, and derives what a person wants to see (phase, steps/s, samples, credit, bytes, compression)
// without the loop having to report it. No DOM and no Node APIs: the page's worker and the Node
// volunteer both use it. Pause and duty cycle ride on the same trainer wrapper (see Throttle).
import type { Trainer } from '../train/trainer.ts';
import type { Phase, VolunteerEvent } from './events.ts';
import type { Stats } from './status.ts';
import type { Throttle } from './throttle.ts';

const FRAME_MAGIC = 'TTU1';
const RECENT_LOSSES = 50;
const RATE_TASKS = 8;
/** Codec frame header: magic(4) version kind bits reserved, then u32 length at byte 8 (shared/codec). */
const CODEC_LENGTH_AT = 8;

type Fetch = typeof fetch;

export type MeterOptions = {
  throttle?: Throttle;
  signal?: AbortSignal;
  now?: () => number;
  onPhase?: (phase: Phase, detail?: string) => void;
  /** Credit carried over from earlier sessions (the page keeps it in IndexedDB). */
  credit?: number;
};

/** What an update frame says about itself: its header JSON and the size of the codec payload. */
export function readUpdateFrame(bytes: Uint8Array): { samples: number; paramCount: number; payloadBytes: number } | undefined {
  if (bytes.length < 8 || String.fromCharCode(...bytes.subarray(0, 4)) !== FRAME_MAGIC) return undefined;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = dv.getUint32(4, true);
  const payloadAt = 8 + headerLength;
  if (payloadAt + 12 > bytes.length) return undefined;
  try {
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, payloadAt))) as { samples?: unknown };
    const paramCount = dv.getUint32(payloadAt + CODEC_LENGTH_AT, true);
    return { samples: Number(header.samples) || 0, paramCount, payloadBytes: bytes.length - payloadAt };
  } catch {
    return undefined;
  }
}

function bodyBytes(body: unknown): Uint8Array | undefined {
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  return undefined;
}

/** GPU steps the engine reports having run, when it exposes a counter (else undefined). */
export function gpuStepsOf(t: Trainer): number | undefined {
  const x = t as unknown as Record<string, unknown>;
  for (const k of ['gpuSteps', 'stepsRun', 'gpuStepCount']) if (typeof x[k] === 'number') return x[k] as number;
  if (typeof x.stats === 'function') {
    const s = (x.stats as () => Record<string, unknown>)();
    if (typeof s?.gpuSteps === 'number') return s.gpuSteps;
  }
  return undefined;
}

/** Resolves on the next turn of the event loop (a message, not a timer: timers are clamped to 4 ms). */
function yieldToEvents(): Promise<void> {
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => { ch.port1.close(); resolve(); };
    ch.port2.postMessage(0);
  });
}

export class Meter {
  readonly stats: Stats;
  private readonly now: () => number;
  private readonly startedAt: number;
  private loopState: { state: Phase; detail?: string } = { state: 'starting' };
  private retrying: string | undefined;
  private uploading = 0;
  private lastPhase: string | undefined;
  /** Finished tasks (wall span and work), for steps/s: a GPU step() only submits, so rates are per task. */
  private tasks: { start: number; end: number; steps: number; samples: number }[] = [];
  private current: { start: number; steps: number; samples: number; idleMs: number } | undefined;

  constructor(private readonly opts: MeterOptions = {}) {
    this.now = opts.now ?? (() => performance.now());
    this.startedAt = this.now();
    this.stats = {
      steps: 0, gpuSteps: 0, pausedMidTask: false, samples: 0, credit: opts.credit ?? 0, updatesSent: 0, updatesAccepted: 0,
      bytesSent: 0, bytesReceived: 0, denseBytes: 0, computeMs: 0, wallMs: 0, stepsPerSec: 0, samplesPerSec: 0,
      recentLosses: [],
    };
  }

  /** The phase: paused wins; a retry in progress shows as waiting; else what the loop last said. */
  phase(): { phase: Phase; detail?: string } {
    if (this.opts.throttle?.isPaused()) return { phase: 'paused' };
    if (this.retrying) return { phase: 'waiting', detail: this.retrying };
    const s = this.loopState;
    if (s.state === 'registering') return { phase: 'fetching', detail: 'joining the relay' };
    if (s.state === 'training' && this.uploading) return { phase: 'training', detail: 'the previous update is uploading meanwhile' };
    if (s.state === 'waiting' && !s.detail) return { phase: 'waiting', detail: 'no work right now; asking again soon' };
    return { phase: s.state, detail: s.detail };
  }

  /** Feed the loop's events here (shared/volunteer/events.ts). */
  onLoopEvent(e: VolunteerEvent): void {
    if (e.type === 'state') this.loopState = { state: e.state, detail: e.detail };
    else if (e.type === 'retry') this.retrying = `relay unreachable (${e.reason}); retry ${e.attempt} in ${(e.delayMs / 1000).toFixed(1)} s`;
    else if (e.type === 'task') { this.stats.jobId = e.task.jobId; this.stats.taskId = e.task.taskId; this.stats.baseVersion = e.task.baseVersion; this.stats.taskSteps = e.task.steps; }
    else if (e.type === 'error') this.stats.lastError = e.message;
    else if (e.type === 'dropped') this.stats.lastError = `task ${e.taskId} dropped: ${e.reason}`;
    this.notify();
  }

  /** Re-derives the phase and reports it when it changed (also call after pause/resume). */
  notify(): void {
    const p = this.phase();
    const key = `${p.phase}|${p.detail ?? ''}`;
    if (key !== this.lastPhase) {
      this.lastPhase = key;
      this.opts.onPhase?.(p.phase, p.detail);
    }
  }

  snapshot(): Stats {
    const t = this.now();
    this.stats.wallMs = t - this.startedAt;
    // rates over the last few finished tasks, from the first one's load to the last one's delta
    const recent = this.tasks.slice(-RATE_TASKS);
    if (recent.length) {
      const secs = Math.max(1e-3, (recent[recent.length - 1].end - recent[0].start) / 1000);
      this.stats.stepsPerSec = recent.reduce((a, r) => a + r.steps, 0) / secs;
      this.stats.samplesPerSec = recent.reduce((a, r) => a + r.samples, 0) / secs;
    }
    return { ...this.stats, recentLosses: this.stats.recentLosses.slice() };
  }

  /** The trainer the loop gets: the same trainer, counted, paused and duty-cycled. Busy time is a
   * task's wall time from load() to delta() less the time spent paused or resting (the GPU queue drains
   * in losses()/delta(), which a step() only submits to). */
  wrapTrainer(inner: Trainer, gpuStepsRan?: () => number): Trainer {
    const m = this;
    const { throttle, signal } = this.opts;
    let gpuBase = gpuStepsRan?.() ?? 0;
    return {
      backend: inner.backend,
      model: inner.model,
      async load(params) {
        m.current = { start: m.now(), steps: 0, samples: 0, idleMs: 0 };
        await inner.load(params);
      },
      async step(batch) {
        const cur = m.current;
        // a macrotask boundary per step, so pause and intensity messages are seen between steps even
        // when a step never leaves the thread (the CPU trainer)
        await yieldToEvents();
        if (throttle?.isPaused()) {
          const p0 = m.now();
          m.stats.pausedMidTask = true;
          m.notify();
          await throttle.gate(signal);
          m.stats.pausedMidTask = false;
          m.notify();
          if (cur) cur.idleMs += m.now() - p0;
        }
        const t0 = m.now();
        await inner.step(batch);
        const busy = m.now() - t0;
        m.stats.steps += 1;
        m.stats.samples += batch.n;
        if (cur) { cur.steps += 1; cur.samples += batch.n; }
        if (gpuStepsRan) {
          const g = gpuStepsRan();
          m.stats.gpuSteps += Math.max(0, g - gpuBase);
          gpuBase = g;
        } else if (inner.backend === 'webgpu') {
          m.stats.gpuSteps += 1;
        }
        const r0 = m.now();
        await throttle?.rest(busy, signal);
        if (cur) cur.idleMs += m.now() - r0;
      },
      async losses() {
        const l = await inner.losses();
        m.stats.recentLosses.push(...l);
        if (m.stats.recentLosses.length > RECENT_LOSSES) m.stats.recentLosses.splice(0, m.stats.recentLosses.length - RECENT_LOSSES);
        return l;
      },
      async delta() {
        const d = await inner.delta();
        const cur = m.current;
        if (cur) {
          const end = m.now();
          m.stats.computeMs += end - cur.start - cur.idleMs;
          m.tasks.push({ start: cur.start + cur.idleMs, end, steps: cur.steps, samples: cur.samples });
          if (m.tasks.length > RATE_TASKS) m.tasks.shift();
          m.current = undefined;
        }
        return d;
      },
      destroy() {
        inner.destroy();
      },
    };
  }

  /** The fetch the loop gets: counts bytes, uploads and credit, and notices when the relay answers again. */
  wrapFetch(inner: Fetch): Fetch {
    const m = this;
    return async function meteredFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      const method = (init?.method ?? 'GET').toUpperCase();
      const isUpload = method === 'POST' && /\/api\/tasks\/[^/]+\/update$/.test(new URL(url, 'http://x').pathname);
      const body = bodyBytes(init?.body);
      const frame = isUpload && body ? readUpdateFrame(body) : undefined;
      if (isUpload) { m.uploading++; m.notify(); }
      try {
        const res = await inner(input, init);
        if (body) m.stats.bytesSent += body.length;
        m.stats.bytesReceived += Number(res.headers.get('content-length') ?? 0);
        if (res.status < 500 && m.retrying) { m.retrying = undefined; m.notify(); }
        if (isUpload && frame) {
          m.stats.updatesSent += 1;
          m.stats.denseBytes += 4 * frame.paramCount;
          if (res.ok) {
            const answer = (await res.clone().json().catch(() => undefined)) as { accepted?: boolean; duplicate?: boolean } | undefined;
            if (answer?.accepted && !answer.duplicate) {
              m.stats.updatesAccepted += 1;
              m.stats.credit += frame.samples;
            }
          }
        }
        return res;
      } catch (err) {
        m.stats.lastError = err instanceof Error ? err.message : String(err);
        throw err;
      } finally {
        if (isUpload) { m.uploading--; m.notify(); }
      }
    };
  }
}
