// The relay publishes every version as a delta, and volunteers rebuild new versions from the one they
// hold: fewer bytes down than the parameters, the version hash checked, and whole parameters for a
// volunteer too far behind. Real relay over HTTP, the real volunteer loop.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest, Task } from '../../shared/protocol/messages.ts';
import { createCpuTrainer } from '../../shared/train/cpu.ts';
import { applyVersionDelta } from '../../shared/codec/version-delta.ts';
import { RelayClient } from '../../shared/volunteer/client.ts';
import { runVolunteer, type VolunteerEvent } from '../../shared/volunteer/loop.ts';
import { paramsFor } from '../../shared/volunteer/params.ts';
import { memoryLoopStore } from '../../shared/volunteer/store.ts';
import { startRelay, waitFor, type TestRelay } from '../helpers/relay.ts';

const hash = (p: Float32Array): string => createHash('sha256').update(new Uint8Array(p.buffer, p.byteOffset, p.byteLength)).digest('hex');
const get = async (url: string) => { const r = await fetch(url); return { status: r.status, body: await r.json() as Manifest & { error: { code: string; message: string } } }; };

describe('version deltas on a live relay', () => {
  let relay: TestRelay;
  const events: VolunteerEvent[][] = [[], []];
  beforeAll(async () => {
    // keep the newest 8 checkpoints only, so a dropped version can be asked for
    relay = await startRelay({ defaultJob: { updatesPerRound: 2, quorum: 2 }, defence: { replication: { baseRate: 0 } }, retention: { keepLast: 8, keepEvery: 1000 } });
    // two volunteers train 24 tasks: each new version is built by them, and each later task is on a newer version
    await Promise.all(events.map((ev, i) => runVolunteer({
      server: relay.url, fetch: (u, init) => fetch(u, init), createTrainer: createCpuTrainer, store: memoryLoopStore(), jobId: 'mnist-mlp',
      signal: new AbortController().signal, agent: `delta-${i}`, maxTasks: 12, onEvent: (e) => ev.push(e),
    })));
    // the last round closes on the pool after the last upload was answered: wait for it, so what the
    // tests read (the newest version, the kept checkpoints) no longer moves
    await waitFor(async () => relay.app.store.countPendingUpdates('mnist-mlp'), (n) => n < 2);
  });
  afterAll(async () => { await relay.stop(); });

  it('volunteers rebuild new versions from deltas, every one matching its version hash', () => {
    const all = events.flat();
    expect(all.filter((e) => e.type === 'error')).toEqual([]);
    const fetched = all.filter((e) => e.type === 'params');
    const viaDeltas = fetched.filter((e) => e.type === 'params' && e.source === 'deltas');
    // the first task of each volunteer downloads whole params; later ones mostly chain a version or two
    expect(viaDeltas.length).toBeGreaterThan(fetched.length / 2);
    expect(relay.app.store.getJob('mnist-mlp')!.version).toBeGreaterThanOrEqual(8);
  });

  it('a stored version is exactly its base plus its published delta', () => {
    const job = relay.app.store.getJob('mnist-mlp')!;
    const prev = relay.app.store.getVersion('mnist-mlp', job.version - 1)!;
    const cur = relay.app.store.getVersion('mnist-mlp', job.version)!;
    const rebuilt = applyVersionDelta(prev.params, relay.app.store.getDelta('mnist-mlp', job.version)!);
    expect(hash(rebuilt)).toBe(cur.hash);
    expect(cur.residual?.length).toBe(cur.params.length);
  });

  it('the manifest lists the unbroken run of deltas ending at a version, with sizes under the params', async () => {
    const v = relay.app.store.getJob('mnist-mlp')!.version;
    const { status, body } = await get(`${relay.url}/api/jobs/mnist-mlp/versions/${v}/manifest`);
    expect(status).toBe(200);
    expect(body.hash).toBe(relay.app.store.versionHash('mnist-mlp', v));
    expect(body.deltas.map((d) => d.version).at(-1)).toBe(v);
    body.deltas.forEach((d, i) => { if (i > 0) expect(d.version).toBe(body.deltas[i - 1].version + 1); });
    for (const d of body.deltas) {
      expect(d.bytes).toBeLessThan(body.paramsBytes / 3.8);
      const bytes = new Uint8Array(await (await fetch(`${relay.url}/api/jobs/mnist-mlp/versions/${d.version}/delta`)).arrayBuffer());
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(d.sha256);
      expect(d.baseHash).toBe(relay.app.store.versionHash('mnist-mlp', d.version - 1));
    }
  });

  it('a volunteer one version behind chains a delta; one too far behind downloads whole params', async () => {
    const client = new RelayClient(relay.url, (u, i) => fetch(u, i));
    const v = relay.app.store.getJob('mnist-mlp')!.version;
    const taskAt = (version: number) => ({ jobId: 'mnist-mlp', taskId: 't', baseVersion: version, versionHash: relay.app.store.versionHash('mnist-mlp', version)!, paramCount: relay.app.store.getVersion('mnist-mlp', version)!.params.length }) as Task;
    const holding = async (version: number) => {
      const store = memoryLoopStore();
      const p = relay.app.store.getVersion('mnist-mlp', version)!;
      await store.putParams(p.hash, p.params);
      await store.putNewest!('mnist-mlp', { version, hash: p.hash });
      return store;
    };
    const near = await paramsFor(client, await holding(v - 1), taskAt(v));
    expect(near).toMatchObject({ source: 'deltas', deltas: 1 });
    expect(hash(near.params)).toBe(relay.app.store.versionHash('mnist-mlp', v));
    // 5 int8 deltas weigh more than the fp32 params (each is about a quarter): the params are cheaper
    const far = await paramsFor(client, await holding(v - 5), taskAt(v));
    expect(far).toMatchObject({ source: 'params', deltas: 0 });
    expect(hash(far.params)).toBe(relay.app.store.versionHash('mnist-mlp', v));
  });

  it('a manifest asked from the version a volunteer holds lists only the deltas after it', async () => {
    const v = relay.app.store.getJob('mnist-mlp')!.version;
    const { status, body } = await get(`${relay.url}/api/jobs/mnist-mlp/versions/${v}/manifest?from=${v - 2}`);
    expect(status).toBe(200);
    expect(body.deltas.map((d) => d.version)).toEqual([v - 1, v]);
    const bad = await get(`${relay.url}/api/jobs/mnist-mlp/versions/${v}/manifest?from=-1`);
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/from/);
  });

  it('a volunteer holding nothing makes version 0 itself, and takes the params of a version whose chain from 0 is dropped', async () => {
    const client = new RelayClient(relay.url, (u, i) => fetch(u, i));
    const v = relay.app.store.getJob('mnist-mlp')!.version;
    const at = (version: number) => ({ jobId: 'mnist-mlp', taskId: 't', baseVersion: version, versionHash: relay.app.store.versionHash('mnist-mlp', version)!, paramCount: relay.app.store.getVersion('mnist-mlp', 0)!.params.length, model: relay.app.store.getJob('mnist-mlp')!.model }) as Task;
    const zero = await paramsFor(client, memoryLoopStore(), at(0));
    expect(zero).toMatchObject({ source: 'seed', deltas: 0 });
    expect(hash(zero.params)).toBe(relay.app.store.versionHash('mnist-mlp', 0));
    // only the newest 8 versions are kept: no chain from version 0 to the newest
    const far = await paramsFor(client, memoryLoopStore(), at(v));
    expect(far).toMatchObject({ source: 'params', deltas: 0 });
    expect(hash(far.params)).toBe(relay.app.store.versionHash('mnist-mlp', v));
  });

  it('a base that is not the relay\'s (a rolled-back version) falls back to whole params', async () => {
    const client = new RelayClient(relay.url, (u, i) => fetch(u, i));
    const v = relay.app.store.getJob('mnist-mlp')!.version;
    const store = memoryLoopStore();
    const wrong = Float32Array.from(relay.app.store.getVersion('mnist-mlp', v - 1)!.params, (x) => x + 1e-3);
    await store.putParams(hash(wrong), wrong);
    await store.putNewest!('mnist-mlp', { version: v - 1, hash: hash(wrong) });
    const got = await paramsFor(client, store, { jobId: 'mnist-mlp', taskId: 't', baseVersion: v, versionHash: relay.app.store.versionHash('mnist-mlp', v)!, paramCount: wrong.length } as Task);
    expect(got.source).toBe('params');
  });

  it('answers 404 with the kept versions for a dropped or unknown version, and for version 0\'s delta', async () => {
    const v = relay.app.store.getJob('mnist-mlp')!.version;
    const dropped = await get(`${relay.url}/api/jobs/mnist-mlp/versions/1/manifest`);
    expect(dropped.status).toBe(404);
    expect(dropped.body.error.code).toBe('TT_ERR_UNKNOWN_VERSION');
    expect(dropped.body.error.message).toMatch(/kept: 0, /);
    const gone = await get(`${relay.url}/api/jobs/mnist-mlp/versions/1/delta`);
    expect(gone.status).toBe(404);
    expect(gone.body.error.message).toMatch(/kept: .*fetch the params of a kept one/);
    const future = await get(`${relay.url}/api/jobs/mnist-mlp/versions/${v + 5}/manifest`);
    expect(future.status).toBe(404);
    expect(future.body.error.message).toMatch(/no version .* yet/);
    const zero = await get(`${relay.url}/api/jobs/mnist-mlp/versions/0/delta`);
    expect(zero.status).toBe(404);
    expect(zero.body.error.message).toMatch(/initial model and has no delta/);
    expect((await get(`${relay.url}/api/jobs/nope/versions/1/manifest`)).status).toBe(404);
  });
});

describe('a newcomer on a relay that keeps every version', () => {
  let relay: TestRelay;
  beforeAll(async () => {
    relay = await startRelay({ defaultJob: { updatesPerRound: 2, quorum: 2, steps: 5 }, defence: { replication: { baseRate: 0 } } });
    await Promise.all([0, 1].map((i) => runVolunteer({
      server: relay.url, fetch: (u, init) => fetch(u, init), createTrainer: createCpuTrainer, store: memoryLoopStore(), jobId: 'mnist-mlp',
      signal: new AbortController().signal, agent: `newcomer-${i}`, maxTasks: 3,
    })));
    await waitFor(async () => relay.app.store.countPendingUpdates('mnist-mlp'), (n) => n < 2);
  });
  afterAll(async () => { await relay.stop(); });

  it('rebuilds the newest version from its own version 0 and the deltas, bit for bit', async () => {
    const v = relay.app.store.getJob('mnist-mlp')!.version;
    expect(v).toBeGreaterThanOrEqual(2);
    const task = { jobId: 'mnist-mlp', taskId: 't', baseVersion: v, versionHash: relay.app.store.versionHash('mnist-mlp', v)!, paramCount: relay.app.store.getVersion('mnist-mlp', 0)!.params.length, model: relay.app.store.getJob('mnist-mlp')!.model } as Task;
    const got = await paramsFor(new RelayClient(relay.url, (u, i) => fetch(u, i)), memoryLoopStore(), task);
    expect(got).toMatchObject({ source: 'deltas', deltas: v });
    expect(hash(got.params)).toBe(relay.app.store.versionHash('mnist-mlp', v));
  });
});
