// Sticky shards: a volunteer says which shards it keeps when it asks for work, and the relay gives it a
// task on one of them while that keeps every shard's visits within a bound of the least-visited one
// (server/scheduler/shard-choice.ts); shards travel brotli- or gzip-encoded (server/routes/wire-encoding.ts).
import { request } from 'node:http';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { dataset } from '../../server/data/datasets.ts';
import { encodedBytes, pickEncoding } from '../../server/routes/wire-encoding.ts';
import { createShardChoice, SLACK } from '../../server/scheduler/shard-choice.ts';
import type { Task } from '../../shared/protocol/messages.ts';
import { createCpuTrainer } from '../../shared/train/cpu.ts';
import { rng } from '../../shared/util/rng.ts';
import { runVolunteer } from '../../shared/volunteer/loop.ts';
import { memoryLoopStore } from '../../shared/volunteer/store.ts';
import { registerSigned, type SignedVolunteer } from '../helpers/identity.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';

let relay: TestRelay | undefined;
afterEach(async () => { await relay?.stop(); relay = undefined; });

const noChecks = { replication: { baseRate: 0, minRate: 0, suspectRate: 0 } };
const ask = async (v: SignedVolunteer, body: unknown): Promise<Response> => fetch(`${relay!.url}/api/jobs/mnist-mlp/tasks`, {
  method: 'POST', headers: await v.taskRequestHeaders('mnist-mlp'), body: JSON.stringify(body),
});
const leased = async (v: SignedVolunteer, shards?: number[]): Promise<Task> => {
  const res = await ask(v, { volunteerId: v.volunteerId, ...(shards ? { shards } : {}) });
  expect(res.status).toBe(200);
  return (await res.json()) as Task;
};

describe('choosing a shard', () => {
  it('keeps every shard within SLACK + 1 visits of the least visited, whatever volunteers claim to hold', async () => {
    const choice = createShardChoice();
    const r = rng(7);
    let cursor = 0;
    const N = 8;
    let heldGiven = 0;
    for (let i = 0; i < 2000; i++) {
      // a mix of honest holders, liars who claim one shard only, and claims outside the dataset
      const held = i % 3 === 0 ? [2] : i % 3 === 1 ? [r.int(N), r.int(N), 99] : [];
      const got = await choice.choose('j', N, held, async () => cursor++);
      if (got.held) { heldGiven++; expect(held).toContain(got.shard); }
      const c = choice.counts('j');
      expect(Math.max(...c) - Math.min(...c)).toBeLessThanOrEqual(SLACK + 1);
    }
    expect(heldGiven).toBeGreaterThan(500); // locality was used, not just the bound
  });

  it('gives a held shard while it is within the bound, then the least-visited one', async () => {
    const choice = createShardChoice();
    let cursor = 0;
    const tie = async () => cursor++;
    expect(await choice.choose('j', 4, [], tie)).toEqual({ shard: 0, held: false });
    expect(await choice.choose('j', 4, [0], tie)).toEqual({ shard: 0, held: true }); // 1 ≤ 0 + SLACK
    const next = await choice.choose('j', 4, [0], tie); // shard 0 is 2 ahead of the unvisited ones
    expect(next.held).toBe(false);
    expect(next.shard).not.toBe(0);
    expect(await choice.choose('j', 4, [-1, 1.5, 7], tie)).toMatchObject({ held: false }); // nothing usable held
  });
});

describe('sticky shards on a live relay', () => {
  it('gives a volunteer that holds a shard a task on it, and it downloads no shard bytes', async () => {
    relay = await startRelay({ evaluate: false, defaultJob: { updatesPerRound: 8, quorum: 8, steps: 2 }, defence: noChecks });
    const bytes = dataset('mnist').shardBytes[5];
    const store = memoryLoopStore();
    await store.putShard('mnist-mlp', 5, bytes);
    const paths: string[] = [];
    const tasks: Task[] = [];
    await runVolunteer({
      server: relay.url, store, createTrainer: createCpuTrainer, jobId: 'mnist-mlp', signal: new AbortController().signal, maxTasks: 1,
      fetch: (u, init) => { paths.push(new URL(String(u)).pathname); return fetch(u, init); },
      onEvent: (e) => { if (e.type === 'task') tasks.push(e.task); },
    });
    expect(tasks.map((t) => t.shard)).toEqual([5]);
    expect(paths.filter((p) => /\/shards\/\d+$/.test(p))).toEqual([]);
  });

  it('prefers held shards only within the bound', async () => {
    relay = await startRelay({ evaluate: false, defaultJob: { updatesPerRound: 100, quorum: 100, steps: 2 }, defence: noChecks });
    const [a, b] = [await registerSigned(relay.url, 'a'), await registerSigned(relay.url, 'b')];
    const first = await leased(a);
    expect((await leased(b, [first.shard])).shard).toBe(first.shard);
    expect((await leased(b, [first.shard])).shard).not.toBe(first.shard); // two visits ahead of unvisited shards
  });

  it('serves a spot check on its original shard whatever the checker holds', async () => {
    relay = await startRelay({ evaluate: false, defaultJob: { updatesPerRound: 100, quorum: 100, steps: 2 }, defence: { replication: { baseRate: 1, distinctNetworks: false } } });
    const [a, b] = [await registerSigned(relay.url, 'a'), await registerSigned(relay.url, 'b')];
    const original = await leased(a);
    const other = (original.shard + 1) % 8;
    const check = await leased(b, [other]);
    expect({ shard: check.shard, seed: check.seed }).toEqual({ shard: original.shard, seed: original.seed });
  });

  it('refuses a held-shards list of the wrong shape with 400 naming the field, and ignores shards the job lacks', async () => {
    relay = await startRelay({ evaluate: false, defaultJob: { updatesPerRound: 100, quorum: 100 }, defence: noChecks });
    const v = await registerSigned(relay.url);
    for (const shards of [['x'], [-1], [1.5], 'all', Array.from({ length: 5000 }, (_, i) => i)]) {
      const res = await ask(v, { volunteerId: v.volunteerId, shards });
      expect(res.status).toBe(400);
      const { error } = (await res.json()) as { error: { code: string; message: string } };
      expect(error.code).toBe('TT_ERR_VALIDATION');
      expect(error.message).toMatch(/shards/);
    }
    const task = await leased(v, [999_999, 8]);
    expect(task.shard).toBeGreaterThanOrEqual(0);
    expect(task.shard).toBeLessThan(8);
  });
});

describe('shards on the wire', () => {
  /** The raw answer, not decoded (fetch would decode it). */
  const raw = (url: string, accept?: string) => new Promise<{ encoding?: string; body: Buffer }>((resolve, reject) => {
    request(url, { headers: accept ? { 'accept-encoding': accept } : {} }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ encoding: res.headers['content-encoding'], body: Buffer.concat(parts) }));
    }).on('error', reject).end();
  });

  it('round-trips a shard brotli- and gzip-encoded, far smaller, and as it is when nothing is accepted', async () => {
    relay = await startRelay({ evaluate: false });
    const want = Buffer.from(dataset('mnist').shardBytes[3]);
    const url = `${relay.url}/api/jobs/mnist-mlp/shards/3`;
    const br = await raw(url, 'gzip, deflate, br');
    expect(br.encoding).toBe('br');
    expect(br.body.length).toBeLessThan(want.length / 4);
    expect(brotliDecompressSync(br.body).equals(want)).toBe(true);
    const gz = await raw(url, 'gzip');
    expect(gz.encoding).toBe('gzip');
    expect(gz.body.length).toBeLessThan(want.length / 4);
    expect(gunzipSync(gz.body).equals(want)).toBe(true);
    const plain = await raw(url);
    expect(plain.encoding).toBeUndefined();
    expect(plain.body.equals(want)).toBe(true);
    // fetch decodes what it asked for: the volunteer's bytes are the shard's
    const fetched = Buffer.from(await (await fetch(url, { headers: { 'accept-encoding': 'br' } })).arrayBuffer());
    expect(fetched.equals(want)).toBe(true);
  });

  it('keeps bytes that arrive in a fresh array each time (deltas) by content hash, compressed once', async () => {
    const delta = Uint8Array.from({ length: 50_000 }, (_, i) => (i * 7) % 13);
    const a = await encodedBytes(delta.slice(), 'gzip', 'delta-hash-1');
    const b = await encodedBytes(delta.slice(), 'gzip', 'delta-hash-1');
    expect(b).toBe(a); // the same compressed buffer, not compressed again
    expect(gunzipSync(a).equals(Buffer.from(delta))).toBe(true);
    expect(a.length).toBeLessThan(delta.length / 10);
  });

  it('picks the best encoding the header allows', () => {
    expect(pickEncoding('gzip, deflate, br, zstd')).toBe('br');
    expect(pickEncoding('br;q=0, gzip;q=0.5')).toBe('gzip');
    expect(pickEncoding('deflate')).toBe('identity');
    expect(pickEncoding(undefined)).toBe('identity');
  });
});
