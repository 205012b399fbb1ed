// Attack: chunked upload bodies, which announce no length, to an unknown task and over a task's cap,
// and many of them from one address. The relay must answer before reading the body it does not want
// (404 for an unknown task, 413 the moment a body passes its task's cap) and hold at most a capped
// number of uploads and bytes per address (429 past either). Each upload below stops sending and never
// ends its body, so an answer can only come from the relay refusing it early.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodedByteBound } from '../../shared/codec/index.ts';
import { paramCount } from '../../shared/models/config.ts';
import { MAX_FRAME_HEADER_BYTES } from '../../shared/protocol/frame.ts';
import type { Task } from '../../shared/protocol/messages.ts';
import { registerSigned } from '../helpers/identity.ts';
import { startRelay, waitFor, type TestRelay } from '../helpers/relay.ts';
import { CUT_SHORT_MS, codeOf, head, openRaw } from './raw-http.ts';

const CHUNK = 64 * 1024;
const STREAMS = 2;
const BYTES = 256 * 1024;
let relay: TestRelay;

/** A relay for the block: round never closes (every lease stays open), optional in-flight caps. */
function relayFor(uploadsInFlight?: { streamsPerAddress: number; bytesPerAddress: number }) {
  beforeAll(async () => { relay = await startRelay({ defaultJob: { updatesPerRound: 1000, quorum: 1000 }, maxBodyBytes: 64 << 20, uploadsInFlight }); });
  afterAll(async () => { await relay.stop(); });
}

async function lease(): Promise<Task> {
  const v = await registerSigned(relay.url);
  const r = await v.askForTask();
  expect(r.status).toBe(200);
  return await r.json() as Task;
}

/** The task's cap as the relay computes it: an fp32 update of the model, plus the frame's header. */
function taskCap(task: Task): number {
  const job = relay.app.store.getJob(task.jobId)!;
  const n = paramCount(job.model);
  return Math.max(encodedByteBound(n, { kind: 'fp32' }), encodedByteBound(n, job.hyperparameters.compression)) + 8 + MAX_FRAME_HEADER_BYTES;
}

const chunkedUpload = async (taskId: string) => {
  const c = await openRaw(relay.url);
  await c.write(head('POST', `/api/tasks/${taskId}/update`, { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' }));
  return c;
};

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${relay.url}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
}

describe('chunked upload bodies', () => {
  relayFor();
  it('answers 404 for an unknown task before reading the body, and closes the connection', async () => {
    const c = await chunkedUpload('t-no-such-task');
    await c.chunk(new Uint8Array(CHUNK)); // one chunk of an upload that would go on for 100 MiB
    const a = await c.answer;
    expect(a.status).toBe(404);
    expect(codeOf(a)).toBe('TT_ERR_UNKNOWN_TASK');
    expect(a.headers.connection).toBe('close');
    await c.closed;
    expect(c.sent()).toBe(CHUNK);
  }, CUT_SHORT_MS);

  it("refuses with 413 once the body passes its task's cap, after at most cap + one chunk", async () => {
    const task = await lease();
    const cap = taskCap(task);
    expect(cap).toBeLessThan(64 << 20); // the per-task cap, far below the route's absolute limit
    const c = await chunkedUpload(task.taskId);
    while (c.sent() <= cap) await c.chunk(new Uint8Array(CHUNK));
    const a = await c.answer;
    expect(a.status).toBe(413);
    expect(codeOf(a)).toBe('TT_ERR_BODY_TOO_LARGE');
    expect(JSON.parse(a.body).error.message).toContain(`${cap}-byte limit`);
    await c.closed;
    expect(c.sent()).toBeLessThanOrEqual(cap + CHUNK);
    await waitFor(() => metric('tabtrain_uploads_in_flight'), (n) => n === 0, 50);
  }, CUT_SHORT_MS);
});

describe('uploads in flight per address', () => {
  relayFor({ streamsPerAddress: STREAMS, bytesPerAddress: BYTES });

  it('holds at most the per-address number of uploads in flight: one more gets 429 before its body is read', async () => {
    const tasks = [await lease(), await lease(), await lease()];
    const open = [];
    for (const t of tasks.slice(0, STREAMS)) {
      const c = await chunkedUpload(t.taskId);
      await c.chunk(new Uint8Array(1024));
      open.push(c);
    }
    await waitFor(() => metric('tabtrain_uploads_in_flight'), (n) => n === STREAMS, 50);
    const extra = await chunkedUpload(tasks[STREAMS].taskId);
    await extra.chunk(new Uint8Array(1024));
    const a = await extra.answer;
    expect(a.status).toBe(429);
    expect(codeOf(a)).toBe('TT_ERR_RATE_LIMITED');
    expect(a.headers['retry-after']).toBe('1');
    for (const c of open) c.socket.destroy();
    // the streams given up free their share: a new upload is let in again (and refused for what it is)
    await waitFor(() => metric('tabtrain_uploads_in_flight'), (n) => n === 0, 50);
    const again = await chunkedUpload(tasks[STREAMS].taskId);
    await again.chunk(new Uint8Array(10));
    await again.write('0\r\n\r\n');
    expect((await again.answer).status).toBe(400);
    again.socket.destroy();
  }, CUT_SHORT_MS);

  it('holds at most the per-address bytes in flight: an upload that would pass them gets 429 as its bytes arrive', async () => {
    const [t1, t2] = [await lease(), await lease()];
    expect(taskCap(t1)).toBeGreaterThan(BYTES); // each body alone is within its task's cap
    const first = await chunkedUpload(t1.taskId);
    await first.chunk(new Uint8Array(BYTES / 2 + 1024));
    await waitFor(() => metric('tabtrain_upload_bytes_in_flight'), (n) => n === BYTES / 2 + 1024, 50);
    const second = await chunkedUpload(t2.taskId);
    await second.chunk(new Uint8Array(BYTES / 2));
    const a = await second.answer;
    expect(a.status).toBe(429);
    expect(codeOf(a)).toBe('TT_ERR_RATE_LIMITED');
    expect(JSON.parse(a.body).error.message).toMatch(/upload bytes/);
    first.socket.destroy();
    await waitFor(() => metric('tabtrain_upload_bytes_in_flight'), (n) => n === 0, 50);
  }, CUT_SHORT_MS);
});
