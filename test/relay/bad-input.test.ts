// Bad input gets a clear 4xx JSON error naming what is wrong, and the relay stays healthy: never a 5xx
// for a client's mistake. Real relay on loopback, real SQLite, real codec frames.
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeUpdate } from '../../shared/codec/index.ts';
import { paramCount, defaultMlp } from '../../shared/models/config.ts';
import { encodeUpdateFrame } from '../../shared/protocol/frame.ts';
import type { Task } from '../../shared/protocol/messages.ts';
import { defaultJobSpec } from '../../server/default-job.ts';
import { registerSigned, type SignedVolunteer } from '../helpers/identity.ts';
import { startRelay, testClock, type TestRelay } from '../helpers/relay.ts';

const N = paramCount(defaultMlp);
type ErrorAnswer = { status: number; body: { error: { code: string; message: string } } };

describe('the relay refuses bad input with a clear 4xx and stays healthy', () => {
  let relay: TestRelay;
  const clock = testClock();
  let volunteerId: string;
  let me: SignedVolunteer;
  const statuses: number[] = [];

  const call = async (method: string, path: string, body?: BodyInit, type?: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> => {
    const res = await fetch(relay.url + path, { method, body, headers: { ...(type ? { 'content-type': type } : {}), ...headers } });
    statuses.push(res.status);
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  const lease = async (jobId = 'mnist-mlp'): Promise<Task> => {
    const r = await call('POST', `/api/jobs/${jobId}/tasks`, JSON.stringify({ volunteerId }), 'application/json', await me.taskRequestHeaders(jobId));
    expect(r.status).toBe(200);
    return r.body as Task;
  };
  const frameFor = (task: Task, payload: Uint8Array) =>
    encodeUpdateFrame({ lease: task.lease, volunteerId, losses: [1, 0.9], samples: 64, computeMs: 5 }, payload);
  const goodPayload = (scale = 1e-3) => encodeUpdate(Float32Array.from({ length: N }, (_, i) => Math.sin(i) * scale), { kind: 'int8', block: 256 });
  // signed like an honest volunteer's upload, so each probe reaches the check it is aimed at
  const upload = async (taskId: string, bytes: Uint8Array) => {
    const lease = (() => { try { return JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + new DataView(bytes.buffer, bytes.byteOffset).getUint32(4, true)))).lease as string; } catch { return ''; } })();
    const res = await fetch(`${relay.url}/api/tasks/${taskId}/update`, { method: 'POST', body: bytes as BodyInit, headers: await me.uploadHeaders(taskId, lease, bytes) });
    statuses.push(res.status);
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  const expectRefusal = (r: { status: number; body: any }, status: number, code: string, mentions?: RegExp) => {
    expect(r.status).toBe(status);
    expect(r.body.error.code).toBe(code);
    expect(r.body.error.message.length).toBeGreaterThan(10);
    if (mentions) expect(r.body.error.message).toMatch(mentions);
  };

  beforeAll(async () => {
    // K large so no round closes and every leased task stays open for these probes; each corrupt payload
    // is a strike against the probe's identity, so the ban threshold is lifted for it to keep probing
    relay = await startRelay({ defaultJob: { updatesPerRound: 1000, quorum: 1000 }, maxBodyBytes: 4 << 20, defence: { replication: { banAt: 1000 } }, now: clock.now });
    relay.app.scheduler.createJob('short-lease', defaultJobSpec({ leaseMs: 150, updatesPerRound: 1000, quorum: 1000 }), 'running');
    me = await registerSigned(relay.url, 'probe');
    volunteerId = me.volunteerId;
  });
  afterAll(async () => {
    const health = await call('GET', '/healthz');
    expect(health.status).toBe(200);
    expect(statuses.filter((s) => s >= 500)).toEqual([]);
    await relay.stop();
  });

  it('refuses malformed JSON with 400 TT_ERR_BAD_JSON', async () => {
    expectRefusal(await call('POST', '/api/volunteers', '{"agent": ', 'application/json'), 400, 'TT_ERR_BAD_JSON', /JSON/);
    expectRefusal(await call('POST', '/api/jobs/mnist-mlp/tasks', '[1,', 'application/json'), 400, 'TT_ERR_BAD_JSON');
  });

  it('refuses a body of the wrong shape with 400 naming the field', async () => {
    expectRefusal(await call('POST', '/api/jobs/mnist-mlp/tasks', JSON.stringify({ volunteer: 'x' }), 'application/json'), 400, 'TT_ERR_VALIDATION', /volunteerId/);
  });

  it('refuses the wrong content type with 415 TT_ERR_CONTENT_TYPE', async () => {
    expectRefusal(await call('POST', '/api/jobs/mnist-mlp/tasks', 'volunteerId=x', 'text/plain'), 415, 'TT_ERR_CONTENT_TYPE', /application\/json/);
    const task = await lease();
    expectRefusal(await call('POST', `/api/tasks/${task.taskId}/update`, JSON.stringify({ values: [1, 2] }), 'application/json'), 415, 'TT_ERR_CONTENT_TYPE', /octet-stream/);
  });

  it('refuses a truncated update frame or payload with 400', async () => {
    const task = await lease();
    const frame = frameFor(task, goodPayload());
    expectRefusal(await upload(task.taskId, frame.subarray(0, 6)), 400, 'TT_ERR_BAD_FRAME', /at least 8/);
    expectRefusal(await upload(task.taskId, frame.subarray(0, 40)), 400, 'TT_ERR_BAD_FRAME', /truncated/);
    expectRefusal(await upload(task.taskId, frame.subarray(0, frame.length - 1000)), 400, 'TT_ERR_BAD_UPDATE', /truncated/);
  });

  it('refuses a corrupted frame or payload with 400', async () => {
    const task = await lease();
    const frame = frameFor(task, goodPayload());
    const badMagic = frame.slice(); badMagic[0] = 0x58;
    expectRefusal(await upload(task.taskId, badMagic), 400, 'TT_ERR_BAD_FRAME', /TTU1/);
    const headerLen = new DataView(frame.buffer).getUint32(4, true);
    const badCodec = frame.slice(); badCodec[8 + headerLen + 5] = 9; // unknown codec kind
    expectRefusal(await upload(task.taskId, badCodec), 400, 'TT_ERR_BAD_UPDATE', /kind/);
    const badHeader = encodeUpdateFrame({ lease: task.lease, volunteerId, losses: 'many', samples: -1, computeMs: 1 } as never, goodPayload());
    expectRefusal(await upload(task.taskId, badHeader), 400, 'TT_ERR_BAD_FRAME', /losses|samples/);
  });

  it('refuses NaN and Inf values with 400 TT_ERR_BAD_UPDATE', async () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const task = await lease();
      const delta = new Float32Array(N); delta[1234] = bad;
      expectRefusal(await upload(task.taskId, frameFor(task, encodeUpdate(delta, { kind: 'fp32' }))), 400, 'TT_ERR_BAD_UPDATE');
    }
  });

  it('refuses an update with the wrong parameter count with 400 TT_ERR_PARAM_COUNT', async () => {
    const task = await lease();
    const r = await upload(task.taskId, frameFor(task, encodeUpdate(new Float32Array(1000).fill(1e-3), { kind: 'int8', block: 256 })));
    expectRefusal(r, 400, 'TT_ERR_PARAM_COUNT', new RegExp(`1000 parameters but the model has ${N}`));
  });

  it('refuses a body over the size limit from its Content-Length, without reading it all', async () => {
    const task = await lease();
    const declared = 1 << 30; // 1 GiB announced; only 64 KiB is ever sent
    const answer = await new Promise<ErrorAnswer & { sentBytes: number }>((resolve, reject) => {
      const url = new URL(`${relay.url}/api/tasks/${task.taskId}/update`);
      let sentBytes = 0;
      const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST',
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(declared) } }, (res) => {
        let text = '';
        res.on('data', (c) => { text += c; });
        res.on('end', () => { req.destroy(); resolve({ status: res.statusCode!, body: JSON.parse(text), sentBytes }); });
      });
      req.on('error', (e) => { if (!(e as NodeJS.ErrnoException).code?.startsWith('ECONNRESET')) reject(e); });
      req.write(new Uint8Array(64 * 1024)); sentBytes += 64 * 1024;
    });
    statuses.push(answer.status);
    expectRefusal(answer, 413, 'TT_ERR_BODY_TOO_LARGE', /exceeds/);
    expect(answer.sentBytes).toBeLessThan(declared / 1000);
  });

  it('refuses a streamed (chunked) body over the cap with 413', async () => {
    const task = await lease();
    const big = new Uint8Array(5 << 20); // over maxBodyBytes = 4 MiB, sent without Content-Length
    const stream = new ReadableStream({ start(c) { for (let i = 0; i < 5; i++) c.enqueue(big.subarray(i << 20, (i + 1) << 20)); c.close(); } });
    const res = await fetch(`${relay.url}/api/tasks/${task.taskId}/update`, {
      method: 'POST', body: stream, headers: { 'content-type': 'application/octet-stream' }, duplex: 'half',
    } as RequestInit);
    statuses.push(res.status);
    expectRefusal({ status: res.status, body: await res.json() }, 413, 'TT_ERR_BODY_TOO_LARGE');
  });

  it('refuses unknown jobs, tasks, versions and volunteers with 404', async () => {
    expectRefusal(await call('POST', '/api/jobs/no-such-job/tasks', JSON.stringify({ volunteerId }), 'application/json'), 404, 'TT_ERR_UNKNOWN_JOB', /no-such-job/);
    expectRefusal(await call('GET', '/api/jobs/no-such-job'), 404, 'TT_ERR_UNKNOWN_JOB');
    expectRefusal(await call('GET', '/api/jobs/mnist-mlp/versions/999/params'), 404, 'TT_ERR_UNKNOWN_VERSION', /999/);
    expectRefusal(await call('GET', '/api/jobs/mnist-mlp/shards/99'), 404, 'TT_ERR_UNKNOWN_SHARD');
    expectRefusal(await upload('t-no-such-task', new Uint8Array(100)), 404, 'TT_ERR_UNKNOWN_TASK', /t-no-such-task/);
    expectRefusal(await call('POST', '/api/jobs/mnist-mlp/tasks', JSON.stringify({ volunteerId: 'v-nobody' }), 'application/json'), 404, 'TT_ERR_UNKNOWN_VOLUNTEER');
  });

  it('refuses a forged lease with 403 TT_ERR_LEASE_INVALID', async () => {
    const task = await lease();
    const forged = { ...task, lease: task.lease.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')) };
    expectRefusal(await upload(task.taskId, frameFor(forged, goodPayload())), 403, 'TT_ERR_LEASE_INVALID', /signature/);
    const other = await lease();
    expectRefusal(await upload(task.taskId, frameFor(other, goodPayload())), 403, 'TT_ERR_LEASE_INVALID', /issued for task/);
  });

  it('refuses an expired lease with 409 TT_ERR_LEASE_EXPIRED', async () => {
    const task = await lease('short-lease');
    clock.advance(task.deadline + 50 - clock.now()); // past the deadline on the relay's clock, without waiting
    expectRefusal(await upload(task.taskId, frameFor(task, goodPayload())), 409, 'TT_ERR_LEASE_EXPIRED', /expired/);
  });

  it('answers a re-sent identical update the same and counts it once, and refuses a reused lease with 409', async () => {
    const task = await lease();
    const frame = frameFor(task, goodPayload());
    const first = await upload(task.taskId, frame);
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ accepted: true, duplicate: false });
    const again = await upload(task.taskId, frame);
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ ...first.body, duplicate: true });
    const counted = relay.app.store.listUpdates('mnist-mlp').filter((u) => u.taskId === task.taskId);
    expect(counted).toHaveLength(1);
    expectRefusal(await upload(task.taskId, frameFor(task, goodPayload(2e-3))), 409, 'TT_ERR_LEASE_USED', /already used/);
  });

  it('answers unknown routes with a 404 JSON error', async () => {
    expectRefusal(await call('GET', '/api/nothing-here'), 404, 'TT_ERR_NOT_FOUND', /GET \/api\/nothing-here/);
  });
});
