// The volunteer page's small parts, without a browser: device choice without WebGPU, pause and duty
// cycle, what the meter counts from the frames it sees, and the Node volunteer's file store.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeUpdate } from '../../shared/codec/index.ts';
import { defaultMlp, initParams } from '../../shared/models/config.ts';
import { encodeUpdateFrame } from '../../shared/protocol/frame.ts';
import { createCpuTrainer } from '../../shared/train/cpu.ts';
import { openFileStore } from '../../server/volunteer/file-store.ts';
import { Meter, readUpdateFrame } from '../../shared/volunteer/meter.ts';
import { pickBackend } from '../../web/volunteer/backend.ts';
import { gunzipped, gzipped } from '../../web/volunteer/piece-gzip.ts';
import { checksum } from '../../shared/volunteer/kv.ts';
import { kvLoopStore } from '../../shared/volunteer/kv-store.ts';
import { Throttle } from '../../shared/volunteer/throttle.ts';

describe('volunteer parts', () => {
  it('pieces between tabs go gzipped when that pays, and inflate to no more than the piece\'s size', async () => {
    const shardLike = Uint8Array.from({ length: 50_000 }, (_, i) => (i % 784 < 300 ? 0 : (i * 37) % 256));
    const z = await gzipped(shardLike);
    expect(z).toBeDefined();
    expect(z!.byteLength).toBeLessThan(shardLike.byteLength / 2);
    expect(await gunzipped(z!, shardLike.byteLength)).toEqual(shardLike);
    // a peer claiming a smaller piece than its gzip inflates to is cut off, and garbage is not a piece
    expect(await gunzipped(z!, shardLike.byteLength - 1)).toBeUndefined();
    expect(await gunzipped(Uint8Array.from([1, 2, 3, 4]), 10)).toBeUndefined();
    // fp32 params barely shrink: they go raw
    expect(await gzipped(new Uint8Array(initParams(defaultMlp, 1).buffer))).toBeUndefined();
  });

  it('falls back to the CPU, saying which browsers have WebGPU, when navigator.gpu is missing', async () => {
    expect((globalThis.navigator as { gpu?: unknown } | undefined)?.gpu).toBeUndefined();
    const b = await pickBackend();
    expect(b.device.backend).toBe('cpu');
    expect(b.device.fallbackReason).toMatch(/navigator\.gpu is missing.*Chrome/);
    const t = await b.makeTrainer(defaultMlp, { batchSize: 4, adamw: { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, clipNorm: 1 });
    expect(t.backend).toBe('cpu');
  });

  it('a paused throttle holds until resumed, and intensity is clamped to (0.05, 1]', async () => {
    const th = new Throttle();
    th.setPaused(true);
    let passed = false;
    const gate = th.gate().then(() => { passed = true; });
    await new Promise((r) => setTimeout(r, 20));
    expect(passed).toBe(false);
    th.setPaused(false);
    await gate;
    expect(passed).toBe(true);
    th.setIntensity(0);
    const ac = new AbortController();
    const rest = th.rest(1000, ac.signal); // would rest 19 s at 5 %: abort ends it
    ac.abort();
    await rest;
    th.setIntensity(Number.NaN);
    await th.rest(1000); // intensity 1: no rest at all
  });

  it('the meter counts steps, samples, bytes, compression and credit from what passes through it', async () => {
    const meter = new Meter();
    const trainer = meter.wrapTrainer(createCpuTrainer(defaultMlp, { batchSize: 2, adamw: { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, clipNorm: 1 }));
    await trainer.load(initParams(defaultMlp, 1));
    const x = new Float32Array(2 * 784).fill(0.5), y = new Int32Array([3, 7]);
    for (let i = 0; i < 3; i++) await trainer.step({ kind: 'labelled', x, y, n: 2 });
    expect((await trainer.losses()).length).toBe(3);
    const delta = await trainer.delta();
    const payload = encodeUpdate(delta, { kind: 'int8', block: 256 }, new Float32Array(delta.length));
    const frame = encodeUpdateFrame({ lease: 'l', volunteerId: 'v', losses: [1, 2, 3], samples: 6, computeMs: 1 }, payload);
    expect(readUpdateFrame(frame)).toEqual({ samples: 6, paramCount: delta.length, payloadBytes: payload.length });
    const relay = async () => new Response(JSON.stringify({ accepted: true, duplicate: false, round: 1, weight: 1 }), { status: 200 });
    const f = meter.wrapFetch(relay as typeof fetch);
    await f('http://relay/api/tasks/t1/update', { method: 'POST', body: frame as BodyInit });
    const s = meter.snapshot();
    expect(s.steps).toBe(3);
    expect(s.samples).toBe(6);
    expect(s.gpuSteps).toBe(0);
    expect(s.recentLosses.length).toBe(3);
    expect(s.credit).toBe(6);
    expect(s.updatesAccepted).toBe(1);
    expect(s.bytesSent).toBe(frame.length);
    expect(s.denseBytes / s.bytesSent).toBeGreaterThan(3.5);
    expect(s.samplesPerSec).toBeGreaterThan(0);
  });

  it('the Node volunteer keeps residual and task in files, so a restart resumes them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tabtrain-file-store-'));
    try {
      const residual = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i));
      const a = kvLoopStore(await openFileStore(dir), 0);
      await a.putResidual('job', residual);
      await a.putTask({ taskId: 't-1' } as never);
      await a.putParams('h1', residual);
      const b = kvLoopStore(await openFileStore(dir), 0);
      expect(checksum(await b.getResidual('job'))).toBe(checksum(residual));
      expect((await b.getTask())?.taskId).toBe('t-1');
      expect(Array.from((await b.getParams('h1'))!.subarray(0, 5))).toEqual(Array.from(residual.subarray(0, 5)));
      await b.putTask(undefined);
      expect(await kvLoopStore(await openFileStore(dir), 0).getTask()).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
