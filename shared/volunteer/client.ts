// Typed HTTP client of the relay for volunteers (browser, worker, Node): every answer is checked
// against the protocol schemas; network errors, 5xx and 429 are retried with exponential backoff and
// full jitter; a 4xx becomes a RelayHttpError carrying the relay's error code.
import { Value } from '@sinclair/typebox/value';
import type { AdapterLimits } from '../engine/memory-plan.ts';
import type { TSchema, Static } from '@sinclair/typebox';
import {
  JobInfoSchema, RelaySendsError, RelaySendsJobs, RelaySendsManifest, RelaySendsPowChallenge, RelaySendsTask, RelaySendsUpdateAck, RelaySendsVolunteer,
  type JobInfo, type JobSummary, type Manifest, type Task, type UpdateAck,
} from '../protocol/messages.ts';

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export class RelayHttpError extends Error {
  override name = 'RelayHttpError';
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export type RetryPolicy = { baseMs: number; maxMs: number; attempts: number };
export const defaultRetry: RetryPolicy = { baseMs: 250, maxMs: 8_000, attempts: 10 };

export type ClientOptions = {
  signal?: AbortSignal;
  retry?: RetryPolicy;
  /** told before each backoff sleep, for UIs and logs */
  onRetry?: (what: string, attempt: number, delayMs: number, reason: string) => void;
  /** this machine's clock (default Date.now); signed requests carry the relay's, learned from its answers */
  now?: () => number;
};

/** Resolves after ms, or rejects when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = () => { clearTimeout(t); reject(signal!.reason); };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Signs a task request for the relay's time `at` (ms): shared/security/identity.ts signTaskRequest. */
export type TaskRequestSigner = (jobId: string, at: number) => Promise<string>;

export class RelayClient {
  private readonly base: string;
  /** The relay's clock minus ours, from the x-tabtrain-time of its answers: signed requests carry relay time. */
  private clockOffsetMs = 0;
  constructor(server: string, private readonly fetchFn: FetchLike, private readonly o: ClientOptions = {}) {
    this.base = server.replace(/\/+$/, '');
  }

  /** Registers; with `proof` (public key + solved challenge) the relay derives the id from the key. */
  async register(agent?: string, device?: string, proof?: { publicKey: string; challenge: string; nonce: string }): Promise<string> {
    const r = await this.json('POST', '/api/volunteers', { agent, device, ...proof }, RelaySendsVolunteer);
    return r.volunteerId;
  }

  /** A proof-of-work challenge to solve before registering a key. */
  async challenge(): Promise<{ challenge: string; difficulty: number }> {
    return this.json('GET', '/api/volunteers/challenge', undefined, RelaySendsPowChallenge);
  }

  async jobs(): Promise<JobSummary[]> {
    return (await this.json('GET', '/api/jobs', undefined, RelaySendsJobs)).jobs;
  }

  async job(jobId: string): Promise<JobInfo> {
    return this.json('GET', `/api/jobs/${encodeURIComponent(jobId)}`, undefined, JobInfoSchema);
  }

  /** A task, or how long to wait before asking again. With `sign`, the request is signed afresh for each
   * attempt, and once more if the relay says our clock is off (its answer told us its clock). */
  async lease(jobId: string, volunteerId: string, sign?: TaskRequestSigner, adapter?: AdapterLimits): Promise<{ task: Task } | { retryMs: number; paused: boolean }> {
    const init = async (): Promise<RequestInit> => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (sign) {
        const at = (this.o.now ?? Date.now)() + this.clockOffsetMs;
        headers['x-tabtrain-time'] = String(at);
        headers['x-tabtrain-signature'] = await sign(jobId, at);
      }
      return { method: 'POST', headers, body: JSON.stringify(adapter ? { volunteerId, adapter } : { volunteerId }) };
    };
    const path = `/api/jobs/${encodeURIComponent(jobId)}/tasks`;
    const res = await this.send('lease', path, init).catch((e: unknown) => {
      if (e instanceof RelayHttpError && e.code === 'TT_ERR_REQUEST_TIME') return this.send('lease', path, init);
      throw e;
    });
    if (res.status === 204) {
      const ms = Number(res.headers.get('x-tabtrain-retry-ms') ?? Number(res.headers.get('retry-after') ?? 1) * 1000);
      return { retryMs: Number.isFinite(ms) && ms > 0 ? ms : 1000, paused: res.headers.get('x-tabtrain-job-status') === 'paused' };
    }
    return { task: await this.checked(res, RelaySendsTask) };
  }

  async params(jobId: string, version: number): Promise<{ params: Float32Array; hash: string }> {
    const res = await this.send('params', `/api/jobs/${encodeURIComponent(jobId)}/versions/${version}/params`, { method: 'GET' });
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (bytes.length % 4 !== 0) throw new RelayHttpError(res.status, 'TT_CLIENT_BAD_PARAMS', `params of version ${version} are ${bytes.length} bytes, not a whole number of fp32 values`);
    return { params: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4), hash: res.headers.get('x-tabtrain-hash') ?? '' };
  }

  /** How a version can be fetched: its hash, size, and the published deltas that end at it. */
  async manifest(jobId: string, version: number): Promise<Manifest> {
    return this.json('GET', `/api/jobs/${encodeURIComponent(jobId)}/versions/${version}/manifest`, undefined, RelaySendsManifest);
  }

  /** The published delta that makes `version` from version − 1 (shared/codec/version-delta.ts). */
  async delta(jobId: string, version: number): Promise<Uint8Array> {
    const res = await this.send('delta', `/api/jobs/${encodeURIComponent(jobId)}/versions/${version}/delta`, { method: 'GET' });
    return new Uint8Array(await res.arrayBuffer());
  }

  async shard(jobId: string, shard: number): Promise<Uint8Array> {
    const res = await this.send('shard', `/api/jobs/${encodeURIComponent(jobId)}/shards/${shard}`, { method: 'GET' });
    return new Uint8Array(await res.arrayBuffer());
  }

  /** Safe to retry: the relay answers a re-sent identical frame with the same answer, counted once. */
  async upload(taskId: string, frame: Uint8Array, signal?: AbortSignal, signature?: string): Promise<UpdateAck> {
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (signature) headers['x-tabtrain-signature'] = signature;
    const res = await this.send('upload', `/api/tasks/${encodeURIComponent(taskId)}/update`, {
      method: 'POST', headers, body: frame as BodyInit,
    }, signal);
    return this.checked(res, RelaySendsUpdateAck);
  }

  private async json<S extends TSchema>(method: string, path: string, body: unknown, schema: S): Promise<Static<S>> {
    const init: RequestInit = body === undefined ? { method } : { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
    return this.checked(await this.send(path, path, init), schema);
  }

  private async checked<S extends TSchema>(res: Response, schema: S): Promise<Static<S>> {
    const body: unknown = await res.json().catch(() => undefined);
    if (!Value.Check(schema, body)) {
      const first = Value.Errors(schema, body).First();
      throw new RelayHttpError(res.status, 'TT_CLIENT_BAD_ANSWER', `relay answer to ${res.url} does not match the protocol at ${first?.path || '/'}: ${first?.message ?? 'not JSON'}`);
    }
    return body as Static<S>;
  }

  /** One request with retries; returns a 2xx response or throws. `init` may be made anew for each attempt. */
  private async send(what: string, path: string, init: RequestInit | (() => Promise<RequestInit>), signal = this.o.signal): Promise<Response> {
    const p = this.o.retry ?? defaultRetry;
    for (let attempt = 1; ; attempt++) {
      let reason: string;
      let atLeastMs = 0; // a 429's Retry-After: backing off less would only be refused again
      try {
        const res = await this.fetchFn(this.base + path, { ...(typeof init === 'function' ? await init() : init), signal });
        const relayTime = Number(res.headers.get('x-tabtrain-time'));
        if (relayTime > 0) this.clockOffsetMs = relayTime - (this.o.now ?? Date.now)();
        if (res.ok) return res;
        if (res.status < 500 && res.status !== 429) {
          const body: unknown = await res.json().catch(() => undefined);
          const e = Value.Check(RelaySendsError, body) ? body.error : { code: `HTTP_${res.status}`, message: `${what} failed with HTTP ${res.status}` };
          throw new RelayHttpError(res.status, e.code, e.message);
        }
        reason = `HTTP ${res.status}`;
        if (res.status === 429) atLeastMs = Math.min(p.maxMs * 8, 1000 * (Number(res.headers.get('retry-after')) || 0));
        await res.body?.cancel().catch(() => undefined);
      } catch (e) {
        if (e instanceof RelayHttpError || signal?.aborted) throw e;
        reason = (e as Error).message;
      }
      if (attempt >= p.attempts) throw new RelayHttpError(0, 'TT_CLIENT_UNREACHABLE', `${what} failed ${attempt} times; last: ${reason}`);
      // full jitter: uniform in [0, min(max, base·2^attempt)]
      const delay = atLeastMs + Math.random() * Math.min(p.maxMs, p.baseMs * 2 ** attempt);
      this.o.onRetry?.(what, attempt, delay, reason);
      await sleep(delay, signal);
    }
  }
}
