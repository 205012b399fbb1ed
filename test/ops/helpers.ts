// Shared pieces of the ops tests: a relay with an operator and two researchers, multipart submission,
// and hand-made updates (a volunteer's upload without the training) for round and rollback tests.
import { encodeUpdate } from '../../shared/codec/index.ts';
import { encodeUpdateFrame } from '../../shared/protocol/frame.ts';
import type { Task } from '../../shared/protocol/messages.ts';
import { createToken } from '../../server/ops/tokens.ts';
import { registerSigned, signedVolunteer, uploadHeadersFor } from '../helpers/identity.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import type { RelayOptions } from '../../server/app.ts';

export type OpsRelay = TestRelay & { operator: string; alice: string; bob: string };

export async function startOpsRelay(opts: Partial<RelayOptions> = {}): Promise<OpsRelay> {
  const relay = await startRelay({ defaultJob: false, ...opts });
  const tok = (role: 'operator' | 'researcher', name: string) => createToken(relay.app.db, { role, name, actor: 'test:data-dir' }).token;
  return Object.assign(relay, { operator: tok('operator', 'olga'), alice: tok('researcher', 'alice'), bob: tok('researcher', 'bob') });
}

export const bearer = (token?: string): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});

export async function submit(url: string, token: string | undefined, spec: unknown, data: string | Uint8Array, filename = 'data.txt'): Promise<{ status: number; body: any }> {
  const form = new FormData();
  form.set('spec', typeof spec === 'string' ? spec : JSON.stringify(spec));
  form.set('data', new Blob([data as BlobPart]), filename);
  const r = await fetch(`${url}/api/ops/jobs`, { method: 'POST', headers: bearer(token), body: form });
  return { status: r.status, body: await r.json() };
}

export async function post(url: string, path: string, token?: string, body?: unknown): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { ...bearer(token) };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(url + path, { method: 'POST', headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}

export async function get(url: string, path: string, token?: string): Promise<{ status: number; body: any }> {
  const r = await fetch(url + path, { headers: bearer(token) });
  return { status: r.status, body: await r.json() };
}

/** XOR-ish labelled rows: enough for a tiny MLP job. */
export function labelledJson(rows = 64): string {
  const x = Array.from({ length: rows }, (_, i) => [i % 2, (i >> 1) % 2, ((i * 7) % 10) / 10]);
  return JSON.stringify({ x, y: x.map(([a, b]) => a ^ b) });
}

export const mlpJob = (over: Record<string, unknown> = {}) => ({
  name: 'xor mlp', model: { kind: 'mlp', hidden: [4] }, dataset: { format: 'labelled', shards: 2, heldOutFraction: 0.25 },
  hyperparameters: { updatesPerRound: 1, quorum: 1, compression: { kind: 'fp32' } }, ...over,
});

export async function registerVolunteer(url: string): Promise<string> {
  // volunteers register a signing key with a proof of work (server/defence); uploadFor signs with it
  return (await registerSigned(url, 'ops-test')).volunteerId;
}

/** Asks for a task as the volunteer would, signed. */
export async function leaseFor(jobId: string, volunteerId: string): Promise<{ status: number; body: any }> {
  const v = signedVolunteer(volunteerId);
  if (!v) throw new Error(`leaseFor: ${volunteerId} was not registered with registerSigned (registerVolunteer does)`);
  const r = await v.askForTask(jobId);
  return { status: r.status, body: r.status === 204 ? undefined : await r.json() };
}

/** Leases a task and uploads `delta` for it, as a volunteer would after its inner steps. */
export async function uploadDelta(url: string, jobId: string, volunteerId: string, delta: Float32Array): Promise<{ task: Task; status: number; body: any }> {
  const lease = await leaseFor(jobId, volunteerId);
  if (lease.status !== 200) throw new Error(`lease failed: ${lease.status} ${JSON.stringify(lease.body)}`);
  const task = lease.body as Task;
  return { task, ...(await uploadFor(url, task, volunteerId, delta)) };
}

export async function uploadFor(url: string, task: Task, volunteerId: string, delta: Float32Array): Promise<{ status: number; body: any }> {
  const frame = encodeUpdateFrame({ lease: task.lease, volunteerId, losses: [1], samples: task.steps * task.batchSize, computeMs: 5 }, encodeUpdate(delta, task.compression));
  const headers = await uploadHeadersFor(volunteerId, task.taskId, task.lease, frame);
  const r = await fetch(`${url}/api/tasks/${task.taskId}/update`, { method: 'POST', headers, body: frame as BodyInit });
  return { status: r.status, body: await r.json() };
}

/** Polls until predicate holds (the test's timeout is the only bound). */
export async function until<T>(probe: () => Promise<T>, ok: (v: T) => boolean, everyMs = 100): Promise<T> {
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
