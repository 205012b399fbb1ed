// Shared by the security regression tests: signed task requests and uploads of hand-made frames against
// a real relay over loopback HTTP (the attacks were found against a live relay, so they are replayed so).
import { expect } from 'vitest';
import { encodeUpdate } from '../../shared/codec/index.ts';
import { encodeUpdateFrame } from '../../shared/protocol/frame.ts';
import type { Task, UpdateHeader } from '../../shared/protocol/messages.ts';
import type { SignedVolunteer } from '../helpers/identity.ts';
import type { TestRelay } from '../helpers/relay.ts';

export type Answer = { status: number; body: any };

/** A signed task request that must be answered with a task. */
export async function lease(v: SignedVolunteer, jobId = 'mnist-mlp'): Promise<Task> {
  const res = await v.askForTask(jobId);
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as Task;
}

/** A signed task request, answered as it came (204 has no body). */
export async function ask(v: SignedVolunteer, jobId = 'mnist-mlp'): Promise<Answer> {
  const res = await v.askForTask(jobId);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** The frame an upload carries: a header (defaults: an honest-looking one) and a codec payload. */
export function frame(task: Task, volunteerId: string, payload: Uint8Array, header: Partial<UpdateHeader> = {}): Uint8Array {
  return encodeUpdateFrame({ lease: task.lease, volunteerId, losses: [2.3, 2.0], samples: task.steps * task.batchSize, computeMs: 5, ...header }, payload);
}

/** A dense Δ in the task's own codec. */
export const payloadOf = (task: Task, delta: Float32Array): Uint8Array => encodeUpdate(delta, task.compression);

/** POST /api/tasks/:taskId/update, signed by `signer` (the task's volunteer unless a forger is given). */
export async function upload(relay: TestRelay, signer: SignedVolunteer, task: Task, body: Uint8Array): Promise<Answer> {
  const res = await fetch(`${relay.url}/api/tasks/${task.taskId}/update`, { method: 'POST', body: body as BodyInit, headers: await signer.uploadHeaders(task.taskId, task.lease, body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

export function refused(r: Answer, status: number, code: string, mentions?: RegExp): void {
  expect(r.status, JSON.stringify(r.body)).toBe(status);
  expect(r.body.error.code).toBe(code);
  if (mentions) expect(r.body.error.message).toMatch(mentions);
}

/** ±c on every coordinate, signs from a fixed pattern: the Sybils' update, of L2 norm `norm`. */
export function signFlood(n: number, norm: number, seed = 1): Float32Array {
  const c = norm / Math.sqrt(n);
  return Float32Array.from({ length: n }, (_, i) => (((i * 2654435761 + seed) >>> 7) & 1 ? c : -c));
}

/** A small honest-sized Δ (norm ≈ scale·√(n/2)). */
export const small = (n: number, k = 1, scale = 1e-3): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(i * k + k) * scale);

export async function metric(relay: TestRelay, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${relay.url}/metrics`)).text();
  const m = new RegExp(`^${name}${labels ? `\\{${labels}\\}` : ''} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}
