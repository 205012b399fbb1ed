// A volunteer identity for tests that speak the protocol by hand: a P-256 keypair, registered with a
// solved proof of work, and the signature header for an upload. Real WebCrypto, real relay.
import { createIdentity, signTaskRequest, signUpdate, type Identity } from '../../shared/security/identity.ts';
import { solvePow } from '../../shared/security/pow.ts';

export type SignedVolunteer = {
  volunteerId: string; identity: Identity;
  /** headers for POST /api/tasks/:taskId/update of this frame */
  uploadHeaders(taskId: string, lease: string, frame: Uint8Array): Promise<Record<string, string>>;
  /** headers for POST /api/jobs/:jobId/tasks, signed now (the test's clock is the relay's) */
  taskRequestHeaders(jobId: string): Promise<Record<string, string>>;
  /** POST /api/jobs/:jobId/tasks as this volunteer, signed; the answer as it came */
  askForTask(jobId?: string): Promise<Response>;
};

const known = new Map<string, SignedVolunteer>();

/** Registers a fresh identity (challenge → proof of work → POST /api/volunteers). */
export async function registerSigned(url: string, agent = 'test'): Promise<SignedVolunteer> {
  const identity = await createIdentity();
  const c = await (await fetch(`${url}/api/volunteers/challenge`)).json() as { challenge: string; difficulty: number };
  const nonce = await solvePow(c.challenge, c.difficulty);
  const res = await fetch(`${url}/api/volunteers`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ agent, publicKey: identity.publicKey, challenge: c.challenge, nonce }),
  });
  const body = await res.json() as { volunteerId: string };
  if (res.status !== 201) throw new Error(`registration failed: ${res.status} ${JSON.stringify(body)}`);
  const v: SignedVolunteer = {
    volunteerId: body.volunteerId, identity,
    uploadHeaders: async (taskId, lease, frame) => ({
      'content-type': 'application/octet-stream', 'x-tabtrain-signature': await signUpdate(identity, taskId, lease, frame),
    }),
    taskRequestHeaders: async (jobId) => {
      const at = Date.now();
      return { 'content-type': 'application/json', 'x-tabtrain-time': String(at), 'x-tabtrain-signature': await signTaskRequest(identity, jobId, at) };
    },
    askForTask: async (jobId = 'mnist-mlp') => fetch(`${url}/api/jobs/${jobId}/tasks`, {
      method: 'POST', headers: await v.taskRequestHeaders(jobId), body: JSON.stringify({ volunteerId: v.volunteerId }),
    }),
  };
  known.set(v.volunteerId, v);
  return v;
}

/** The identity registered under this id by registerSigned, if any. */
export const signedVolunteer = (volunteerId: string): SignedVolunteer | undefined => known.get(volunteerId);

/** Upload headers for a volunteer registered by registerSigned (plain content-type for others). */
export async function uploadHeadersFor(volunteerId: string, taskId: string, lease: string, frame: Uint8Array): Promise<Record<string, string>> {
  return signedVolunteer(volunteerId)?.uploadHeaders(taskId, lease, frame) ?? { 'content-type': 'application/octet-stream' };
}
