// Fuzz: 10,000 random or malformed requests over every route of a real relay (loopback HTTP, real
// SQLite, real codec): no crash, no 5xx, memory bounded, and an honest volunteer interleaved with the
// junk keeps getting its updates accepted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeUpdate } from '../../shared/codec/index.ts';
import { defaultMlp, paramCount } from '../../shared/models/config.ts';
import { encodeUpdateFrame } from '../../shared/protocol/frame.ts';
import type { Task } from '../../shared/protocol/messages.ts';
import { rng, type Rng } from '../../shared/util/rng.ts';
import { registerSigned, type SignedVolunteer } from '../helpers/identity.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';

const N = paramCount(defaultMlp);
const REQUESTS = 10_000;
const CONCURRENCY = 16;

// every route of the relay and the operator API, with :params filled in by the fuzzer
const ROUTES: [string, string][] = [
  ['POST', '/api/volunteers'], ['GET', '/api/volunteers/challenge'], ['GET', '/api/jobs'], ['GET', '/api/jobs/:jobId'], ['POST', '/api/jobs/:jobId/tasks'],
  ['GET', '/api/jobs/:jobId/versions/:version/params'], ['GET', '/api/jobs/:jobId/shards/:shard'],
  ['POST', '/api/tasks/:taskId/update'], ['GET', '/api/jobs/:jobId/evals'], ['GET', '/healthz'], ['GET', '/metrics'],
  ['GET', '/api/ops/snapshot'], ['POST', '/api/ops/tokens'], ['GET', '/api/ops/tokens'], ['DELETE', '/api/ops/tokens/:tokenId'],
  ['GET', '/api/ops/audit'], ['GET', '/api/ops/audit/verify'], ['POST', '/api/ops/jobs'], ['GET', '/api/ops/jobs'],
  ['POST', '/api/ops/jobs/:jobId/approve'], ['POST', '/api/ops/jobs/:jobId/pause'], ['POST', '/api/ops/jobs/:jobId/resume'],
  ['POST', '/api/ops/jobs/:jobId/rollback'], ['GET', '/api/ops/jobs/:jobId/overview'],
  ['GET', '/api/ops/jobs/:jobId/versions/:version/model.onnx'], ['GET', '/'],
];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'];
const TYPES = ['application/json', 'application/octet-stream', 'text/plain', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', ''];

type Req = { method: string; path: string; body?: Uint8Array | string; type?: string; headers?: Record<string, string> };

function junkString(r: Rng): string {
  const pick = [
    () => 'mnist-mlp', () => '0', () => String(r.int(1e6)), () => '-1', () => '1e309', () => 'NaN', () => '..%2F..%2Fetc%2Fpasswd',
    () => 'a'.repeat(1 + r.int(3000)), () => '%00', () => 'ü😀', () => '%', () => '__proto__', () => 'constructor', () => "'; DROP TABLE tasks; --",
  ];
  return pick[r.int(pick.length)]();
}

function junkJson(r: Rng, depth = 0): unknown {
  switch (r.int(depth > 3 ? 5 : 8)) {
    case 0: return r.int(3) === 0 ? -r.next() * 1e300 : r.int(1e9);
    case 1: return junkString(r);
    case 2: return r.next() < 0.5;
    case 3: return null;
    case 4: return 'v-' + r.int(100);
    case 5: return Array.from({ length: r.int(5) }, () => junkJson(r, depth + 1));
    case 6: return { __proto__: { polluted: true }, constructor: { prototype: 1 } };
    default: {
      const keys = ['volunteerId', 'agent', 'device', 'lease', 'losses', 'samples', 'computeMs', 'role', 'version', 'name', 'jobId', 'x'];
      return Object.fromEntries(Array.from({ length: r.int(5) }, () => [keys[r.int(keys.length)], junkJson(r, depth + 1)]));
    }
  }
}

function mutate(r: Rng, bytes: Uint8Array): Uint8Array {
  const b = r.int(4) === 0 ? bytes.slice(0, r.int(bytes.length + 1)) : bytes.slice();
  for (let k = 0, flips = 1 + r.int(8); k < flips && b.length; k++) b[r.int(b.length)] = r.int(256);
  return b;
}

describe('fuzz: random and malformed requests over every route', () => {
  let relay: TestRelay;
  let volunteerId = '';
  let me: SignedVolunteer;
  const statuses = new Map<number, number>();
  const fiveHundreds: string[] = [];

  const send = async (q: Req): Promise<{ status: number; text: string }> => {
    const headers: Record<string, string> = { ...q.headers };
    if (q.type) headers['content-type'] = q.type;
    const canHaveBody = q.method !== 'GET' && q.method !== 'HEAD';
    const res = await fetch(relay.url + q.path, { method: q.method, headers, body: canHaveBody ? (q.body as BodyInit | undefined) : undefined });
    const text = await res.text();
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    if (res.status >= 500) fiveHundreds.push(`${q.method} ${q.path.slice(0, 80)} → ${res.status} ${text.slice(0, 200)}`);
    return { status: res.status, text };
  };
  const leaseTask = async (): Promise<Task> => {
    const r = await send({ method: 'POST', path: '/api/jobs/mnist-mlp/tasks', body: JSON.stringify({ volunteerId }), headers: await me.taskRequestHeaders('mnist-mlp') });
    expect(r.status).toBe(200);
    return JSON.parse(r.text) as Task;
  };
  const honestFrame = (task: Task, seed: number) => {
    const s = rng(seed);
    const delta = Float32Array.from({ length: N }, () => s.normal() * 1e-3);
    return encodeUpdateFrame({ lease: task.lease, volunteerId, losses: [2.3, 2.1], samples: 640, computeMs: 10 }, encodeUpdate(delta, task.compression));
  };

  beforeAll(async () => {
    // the honest volunteer shares the flooder's address here, so the per-address limits are lifted;
    // registration keeps its default limit (the junk hits it) and identities their own
    const lifted = { capacity: 1e9, refillPerSecond: 1e9 };
    // K = 16 with a short round timer: the fuzzer's four leased tasks (mutated, unsigned, never accepted)
    // cannot use up the round's slots, and rounds keep closing on the honest updates
    relay = await startRelay({ evaluate: false, maxBodyBytes: 4 << 20, defaultJob: { updatesPerRound: 16, quorum: 1, roundTimeoutMs: 300 }, defence: { limits: { tasksPerAddress: lifted, uploadsPerAddress: lifted } } });
    me = await registerSigned(relay.url, 'honest');
    volunteerId = me.volunteerId;
  });
  afterAll(async () => {
    await relay?.stop();
  });

  it(`answers ${REQUESTS} junk requests without a 5xx, keeps memory bounded and keeps serving an honest volunteer`, async () => {
    const r = rng(2026);
    // a few real tasks and frames to mutate, so the junk reaches deep into the update path
    const tasks: Task[] = [];
    for (let i = 0; i < 4; i++) tasks.push(await leaseTask());
    const frames = tasks.map((t, i) => honestFrame(t, i));
    const goodSig = (await me.uploadHeaders(tasks[0].taskId, tasks[0].lease, frames[0]))['x-tabtrain-signature'];
    const make = (): Req => {
      const kind = r.int(10);
      if (kind < 3) {
        // the update route: mutated real frames, frames with junk headers, random bytes
        const t = tasks[r.int(tasks.length)];
        const path = `/api/tasks/${r.int(5) ? t.taskId : encodeURIComponent(junkString(r))}/update`;
        const sub = r.int(3);
        const body = sub === 0 ? mutate(r, frames[r.int(frames.length)])
          : sub === 1 ? encodeUpdateFrame(junkJson(r) as never, mutate(r, frames[0].subarray(frames[0].length - 1000)))
            : Uint8Array.from({ length: r.int(2000) }, () => r.int(256));
        // signatures: none, junk, or a real one over other bytes (a tampered body)
        const sig = r.int(3);
        const headers: Record<string, string> = sig === 0 ? {} : { 'x-tabtrain-signature': sig === 1 ? encodeURIComponent(junkString(r)).slice(0, 200) : goodSig };
        return { method: 'POST', path, body, type: r.int(6) ? 'application/octet-stream' : TYPES[r.int(TYPES.length)], headers };
      }
      const [m, template] = ROUTES[r.int(ROUTES.length)];
      const path = template.replace(/:[a-zA-Z]+/g, () => encodeURIComponent(r.int(3) ? junkString(r) : 'mnist-mlp')) +
        (r.int(4) === 0 ? `?${encodeURIComponent(junkString(r))}=${encodeURIComponent(junkString(r))}` : '');
      const method = r.int(8) === 0 ? METHODS[r.int(METHODS.length)] : m;
      if (kind < 7) return { method, path, body: JSON.stringify(junkJson(r)), type: 'application/json' };
      if (kind < 8) return { method, path, body: '{"volunteerId": ' + junkString(r).slice(0, 50), type: 'application/json' };
      return { method, path, body: Uint8Array.from({ length: r.int(500) }, () => r.int(256)), type: TYPES[r.int(TYPES.length)] };
    };

    const heapBefore = process.memoryUsage().heapUsed;
    let sent = 0, honestAccepted = 0;
    while (sent < REQUESTS) {
      const batch = Array.from({ length: Math.min(CONCURRENCY, REQUESTS - sent) }, make);
      sent += batch.length;
      const answers = await Promise.all(batch.map(send));
      for (const a of answers) expect(a.status).toBeLessThan(500);
      if (sent % 1000 < CONCURRENCY) {
        // an honest volunteer in the middle of the storm: lease, upload, accepted
        const task = await leaseTask();
        const frame = honestFrame(task, sent);
        const up = await send({ method: 'POST', path: `/api/tasks/${task.taskId}/update`, body: frame, headers: await me.uploadHeaders(task.taskId, task.lease, frame) });
        expect(up.status).toBe(200);
        expect(JSON.parse(up.text)).toMatchObject({ accepted: true, duplicate: false });
        honestAccepted++;
      }
    }
    expect(fiveHundreds).toEqual([]);
    expect(honestAccepted).toBeGreaterThanOrEqual(10);
    // memory: the relay holds no per-junk-request state worth speaking of (generous bound, no GC forced)
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(400 * 1024 * 1024);
    const health = await send({ method: 'GET', path: '/healthz' });
    expect(health.status).toBe(200);
    // the junk was mostly refused as a client's mistake, with several distinct 4xx codes
    const fourHundreds = [...statuses].filter(([s]) => s >= 400 && s < 500);
    expect(fourHundreds.reduce((a, [, n]) => a + n, 0)).toBeGreaterThan(REQUESTS / 2);
    expect(fourHundreds.length).toBeGreaterThanOrEqual(4);
  });
});
