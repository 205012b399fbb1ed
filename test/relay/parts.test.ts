// The relay's parts on their own: job transition table, leases, update frame, shards and batches,
// the outer step, the store's rollback, and the CPU trainer.
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { batchFor, decodeShard, encodeShard, ShardError } from '../../shared/data/shard.ts';
import { defaultMlp, initParams, type MlpConfig } from '../../shared/models/config.ts';
import { decodeUpdateFrame, encodeUpdateFrame, FrameError } from '../../shared/protocol/frame.ts';
import { adamwState, adamwStep, clipGradNorm } from '../../shared/reference/adamw.ts';
import { mlpLossAndGrad } from '../../shared/reference/mlp.ts';
import { createCpuTrainer } from '../../shared/train/cpu.ts';
import { rng } from '../../shared/util/rng.ts';
import { RelayError, storeErrorToRelay } from '../../server/errors.ts';
import { StoreError } from '../../server/store/errors.ts';
import { transitionJob } from '../../server/scheduler/job-state.ts';
import { signLease, verifyLease } from '../../server/scheduler/leases.ts';
import { outerStep } from '../../server/scheduler/outer-step.ts';
import { openSqliteStore } from '../../server/store/sqlite.ts';
import { defaultJobSpec } from '../../server/default-job.ts';

// storage refuses in its own errors; the code is the one the relay answers them with (server/errors.ts)
const codeOf = (f: () => unknown): string => { try { f(); } catch (e) { return (e instanceof StoreError ? storeErrorToRelay(e) : e as RelayError).code ?? (e as Error).name; } return 'no error'; };

describe('job status transition table', () => {
  it('allows pending→running⇄paused and running/paused→done, and names what is allowed otherwise', () => {
    expect(transitionJob('pending', 'running')).toBe('running');
    expect(transitionJob('running', 'paused')).toBe('paused');
    expect(transitionJob('paused', 'running')).toBe('running');
    expect(transitionJob('paused', 'done')).toBe('done');
    expect(codeOf(() => transitionJob('pending', 'paused'))).toBe('TT_ERR_BAD_TRANSITION');
    // done is final but for an operator extending its budget (server/scheduler/stopping.ts)
    expect(() => transitionJob('done', 'paused')).toThrow(/from done it can become: running$/);
    expect(transitionJob('done', 'running')).toBe('running');
  });
});

describe('leases', () => {
  const secret = Buffer.alloc(32, 7);
  const claims = { taskId: 't-1', jobId: 'j', baseVersion: 3, shard: 1, seed: 42, volunteerId: 'v-1', expiresAt: 123 };
  it('round-trips its claims and refuses a tampered or foreign token', () => {
    const token = signLease(secret, claims);
    expect(verifyLease(secret, token)).toEqual(claims);
    const [body, sig] = token.split('.');
    const altered = Buffer.from(JSON.stringify({ ...claims, baseVersion: 4 })).toString('base64url');
    expect(codeOf(() => verifyLease(secret, `${altered}.${sig}`))).toBe('TT_ERR_LEASE_INVALID');
    expect(codeOf(() => verifyLease(Buffer.alloc(32, 8), token))).toBe('TT_ERR_LEASE_INVALID');
    expect(codeOf(() => verifyLease(secret, body))).toBe('TT_ERR_LEASE_INVALID');
  });
});

describe('update frame', () => {
  it('round-trips header and payload, and refuses truncation and a wrong magic', () => {
    const header = { lease: 'abc.def', volunteerId: 'v-1', losses: [2.3, 1.1], samples: 64, computeMs: 12.5 };
    const payload = Uint8Array.from([1, 2, 3, 4, 5]);
    const frame = encodeUpdateFrame(header, payload);
    const back = decodeUpdateFrame(frame);
    expect(back.header).toEqual(header);
    expect(Array.from(back.payload)).toEqual([1, 2, 3, 4, 5]);
    expect(() => decodeUpdateFrame(frame.subarray(0, 12))).toThrow(FrameError);
    const bad = frame.slice(); bad[3] = 0x32;
    expect(() => decodeUpdateFrame(bad)).toThrow(/TTU1/);
  });
});

describe('shards and batches', () => {
  const r = rng(3);
  const shard = { n: 50, inputs: 6, classes: 4, x: Float32Array.from({ length: 300 }, () => Math.round(r.next() * 255) / 255), y: Int32Array.from({ length: 50 }, (_, i) => i % 4) };
  it('round-trips a shard through its binary form and refuses a damaged one', () => {
    const back = decodeShard(encodeShard(shard));
    expect(back.n).toBe(50);
    expect(Array.from(back.y)).toEqual(Array.from(shard.y));
    for (let i = 0; i < 300; i++) expect(back.x[i]).toBeCloseTo(shard.x[i], 6);
    expect(() => decodeShard(encodeShard(shard).subarray(0, 100))).toThrow(ShardError);
  });
  it('draws the same batch for the same (seed, step) and different ones otherwise', () => {
    const a = batchFor(shard, 9, 0, 8), b = batchFor(shard, 9, 0, 8), c = batchFor(shard, 9, 1, 8), d = batchFor(shard, 10, 0, 8);
    const ys = (x: typeof a) => (x.kind === 'labelled' ? Array.from(x.x) : []);
    expect(ys(a)).toEqual(ys(b));
    expect(ys(a)).not.toEqual(ys(c));
    expect(ys(a)).not.toEqual(ys(d));
  });
});

describe('DiLoCo outer step', () => {
  it('is SGD with Nesterov momentum: m ← μm + Δ; θ ← θ − lr(Δ + μm)', () => {
    const { params, momentum } = outerStep(Float32Array.of(1, 2), Float32Array.of(0.5, 0), Float32Array.of(0.1, -0.2), 0.7, 0.9);
    expect(momentum[0]).toBeCloseTo(0.9 * 0.5 + 0.1, 6);
    expect(params[0]).toBeCloseTo(1 - 0.7 * (0.1 + 0.9 * 0.55), 6);
    expect(params[1]).toBeCloseTo(2 - 0.7 * (-0.2 + 0.9 * -0.2), 6);
  });
});

describe('SQLite store', () => {
  it('rolls back to a version, restoring its params and momentum and dropping what came after', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tabtrain-store-'));
    const store = openSqliteStore(join(dir, 'db.sqlite'));
    try {
      const p0 = Float32Array.of(1, 2, 3);
      store.createJob('j', defaultJobSpec(), 'running', { params: p0, hash: 'h0' }, 1);
      store.commitRound('j', { version: 1, params: Float32Array.of(4, 5, 6), momentum: Float32Array.of(1, 1, 1), hash: 'h1' }, [], 2);
      store.commitRound('j', { version: 2, params: Float32Array.of(7, 8, 9), momentum: Float32Array.of(2, 2, 2), hash: 'h2' }, [], 3);
      store.putEval('j', { version: 2, loss: 1, accuracy: 0.5, at: 3 });
      expect(store.rollback('j', 1, 4).version).toBe(1);
      const v = store.getVersion('j', 1)!;
      expect(Array.from(v.params)).toEqual([4, 5, 6]);
      expect(Array.from(v.momentum)).toEqual([1, 1, 1]);
      expect(store.getVersion('j', 2)).toBeUndefined();
      expect(store.listEvals('j')).toEqual([]);
      expect(codeOf(() => store.rollback('j', 7, 5))).toBe('TT_ERR_UNKNOWN_VERSION');
      expect(store.setJobStatus('j', 'paused').status).toBe('paused');
      expect(codeOf(() => store.setJobStatus('j', 'pending'))).toBe('TT_ERR_BAD_TRANSITION');
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps large payloads as files and small ones in their row; a lost file is discarded and reported; an orphan is removed on open', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tabtrain-store-'));
    const lost: string[] = [];
    let store = openSqliteStore(join(dir, 'db.sqlite'), { warn: (f) => lost.push(String(f.task)) });
    const big = (fill: number) => new Uint8Array(200_000).fill(fill);
    try {
      store.createJob('j', defaultJobSpec(), 'running', { params: Float32Array.of(1, 2, 3), hash: 'h0' }, 1);
      for (const [taskId, payload] of [['t-a', big(1)], ['t-b', big(2)], ['t-c', Uint8Array.of(3, 4)]] as const) {
        store.insertTask({ taskId, jobId: 'j', volunteerId: 'v', baseVersion: 0, shard: 0, seed: 1, state: 'issued', issuedAt: 1, expiresAt: 9, reissueOf: null, payloadHash: null, ack: null });
        store.acceptUpdate({ taskId, jobId: 'j', volunteerId: 'v', baseVersion: 0, round: 0, weight: 1, payload,
          payloadHash: 'x', losses: [1], samples: 4, computeMs: 1, acceptedAt: 2, norm: 1 }, '{}');
      }
      expect(readdirSync(join(dir, 'payloads')).sort()).toEqual(['t-a.bin', 't-b.bin']);
      const firstBytes = () => store.pendingUpdates('j').map((u) => [u.taskId, u.payload.length, u.payload[0]]);
      expect(firstBytes()).toEqual([['t-a', 200_000, 1], ['t-b', 200_000, 2], ['t-c', 2, 3]]);

      rmSync(join(dir, 'payloads', 't-a.bin'));
      expect(firstBytes()).toEqual([['t-b', 200_000, 2], ['t-c', 2, 3]]);
      expect(lost).toEqual(['t-a']);
      expect(store.countPendingUpdates('j')).toBe(2);

      writeFileSync(join(dir, 'payloads', 't-never-stored.bin'), 'x');
      store.close();
      store = openSqliteStore(join(dir, 'db.sqlite'));
      expect(readdirSync(join(dir, 'payloads'))).toEqual(['t-b.bin']);
      expect(firstBytes()).toEqual([['t-b', 200_000, 2], ['t-c', 2, 3]]);
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('retention', () => {
  it('drops old checkpoints but every n-th and the best, and the payloads (rows, files) of long-applied updates; pending ones stay', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tabtrain-store-'));
    let store = openSqliteStore(join(dir, 'db.sqlite'));
    try {
      store.createJob('j', defaultJobSpec(), 'running', { params: Float32Array.of(0, 0), hash: 'h0' }, 1);
      const accept = (taskId: string, round: number, payload: Uint8Array) => {
        store.insertTask({ taskId, jobId: 'j', volunteerId: 'v', baseVersion: round, shard: 0, seed: 1, state: 'issued', issuedAt: 1, expiresAt: 9, reissueOf: null, payloadHash: null, ack: null });
        store.acceptUpdate({ taskId, jobId: 'j', volunteerId: 'v', baseVersion: round, round, weight: 1, payload,
          payloadHash: 'x', losses: [1], samples: 4, computeMs: 1, acceptedAt: round, norm: 1 }, '{}');
      };
      for (let v = 1; v <= 20; v++) {
        accept(`t-big-${v}`, v - 1, new Uint8Array(200_000).fill(v)); // a file
        accept(`t-small-${v}`, v - 1, Uint8Array.of(v)); // in its row
        store.commitRound('j', { version: v, params: Float32Array.of(v, v), momentum: Float32Array.of(1, 1), hash: `h${v}` }, [`t-big-${v}`, `t-small-${v}`], v);
        store.putEval('j', { version: v, loss: v === 7 ? 0.1 : 1 + v / 100, accuracy: 0.5, at: v });
        store.pruneHistory('j', v - 3, 5);
      }
      accept('t-pending', 20, new Uint8Array(200_000).fill(99));
      expect(store.listVersions('j')).toEqual([0, 5, 7, 10, 15, 18, 19, 20]);
      expect(Array.from(store.getVersion('j', 7)!.params)).toEqual([7, 7]);
      expect(readdirSync(join(dir, 'payloads')).sort()).toEqual(['t-big-18.bin', 't-big-19.bin', 't-big-20.bin', 't-pending.bin']);
      const kept = store.db.prepare('SELECT task_id FROM updates WHERE payload_kept = 1 ORDER BY accepted_at, task_id').all().map((r) => (r as { task_id: string }).task_id);
      expect(kept).toEqual(['t-big-18', 't-small-18', 't-big-19', 't-small-19', 't-big-20', 't-small-20', 't-pending']);
      expect(store.db.prepare("SELECT SUM(LENGTH(payload)) AS n FROM updates WHERE payload_kept = 0").get()).toEqual({ n: 0 });
      expect(store.listUpdates('j')).toHaveLength(41); // the rows stay: who sent what, its hash and norm
      expect(store.pendingUpdates('j').map((u) => [u.taskId, u.payload[0]])).toEqual([['t-pending', 99]]);
      expect(store.rollback.bind(store, 'j', 12, 30)).toThrow(/no checkpoint of version 12 any more.*kept: 0, 5, 7, 10, 15, 18–20$/);
      store.close();
      store = openSqliteStore(join(dir, 'db.sqlite')); // a reopen keeps what retention kept
      expect(readdirSync(join(dir, 'payloads'))).toHaveLength(4);
      expect(store.rollback('j', 15, 30).version).toBe(15);
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('WAL checkpoints', () => {
  it('run on a worker thread: the relay\'s own commits no longer checkpoint, yet the database file takes the pages in', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tabtrain-store-'));
    const file = join(dir, 'db.sqlite');
    const store = openSqliteStore(file);
    try {
      await expect.poll(() => store.db.pragma('wal_autocheckpoint', { simple: true }), { timeout: 10_000 }).toBe(0);
      const before = statSync(file).size;
      store.db.exec('CREATE TABLE filler (b BLOB)');
      const put = store.db.prepare('INSERT INTO filler VALUES (?)');
      for (let i = 0; i < 40; i++) put.run(Buffer.alloc(100_000, i)); // 4 MB of WAL frames, over 1,000 pages
      await expect.poll(() => statSync(file).size, { timeout: 10_000 }).toBeGreaterThan(before + 3_900_000);
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('CPU trainer', () => {
  it('runs AdamW with clipping on the reference MLP and returns Δ = θ_base − θ_now', async () => {
    const model: MlpConfig = { kind: 'mlp', inputs: 6, hidden: [5], classes: 3 };
    const opts = { batchSize: 4, clipNorm: 0.5, adamw: { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 } };
    const t = createCpuTrainer(model, opts);
    const base = initParams(model, 5);
    const r = rng(1);
    const batches = [0, 1, 2].map(() => ({ kind: 'labelled' as const, x: Float32Array.from({ length: 24 }, () => r.normal()), y: Int32Array.of(0, 1, 2, 1), n: 4 }));
    await t.load(base);
    for (const b of batches) await t.step(b);
    // the same steps by hand
    const p = Float32Array.from(base), s = adamwState(p.length);
    const losses: number[] = [];
    for (const b of batches) {
      const { loss, grad } = mlpLossAndGrad(model, p, b);
      clipGradNorm(grad, 0.5);
      adamwStep(p, grad, s, opts.adamw);
      losses.push(loss);
    }
    expect(await t.losses()).toEqual(losses);
    const delta = await t.delta();
    for (let i = 0; i < p.length; i++) expect(delta[i]).toBeCloseTo(base[i] - p[i], 6);
    await expect(t.load(new Float32Array(3))).rejects.toThrow(/3 parameters/);
    expect(createCpuTrainer(defaultMlp, opts).backend).toBe('cpu');
  });
});
