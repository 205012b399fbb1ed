// A job that no operator has approved yet is its researcher's and the operators' alone: to anybody else
// (no token, or another researcher's) every read route answers exactly as for an unknown job (404), the
// snapshot and dashboard feed do not list it, and another researcher's pause says "unknown", not "forbidden".
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { bearer, get, labelledJson, mlpJob, post, startOpsRelay, submit, until, type OpsRelay } from '../ops/helpers.ts';

let relay: OpsRelay;
let jobId: string;
beforeAll(async () => {
  relay = await startOpsRelay();
  const s = await submit(relay.url, relay.alice, mlpJob({ name: 'secret plan', description: 'not for everyone yet' }), labelledJson());
  expect(s.status, JSON.stringify(s.body)).toBe(201);
  jobId = s.body.jobId;
});
afterAll(async () => relay?.stop());

const paths = (id: string) => [
  `/api/jobs/${id}`, `/api/jobs/${id}/evals`, `/api/jobs/${id}/versions/0/params`, `/api/jobs/${id}/shards/0`,
  `/api/ops/jobs/${id}/overview`, `/api/ops/jobs/${id}/versions/0/model.onnx`,
];

async function status(path: string, token?: string): Promise<{ status: number; code?: string }> {
  const r = await fetch(relay.url + path, { headers: bearer(token) });
  const body = r.headers.get('content-type')?.includes('json') ? await r.json() as { error?: { code: string } } : undefined;
  return { status: r.status, code: body?.error?.code };
}

describe('a pending job', () => {
  test('is 404, like an unknown job, on every read route to anyone but its researcher and operators', async () => {
    const unknown = await status('/api/jobs/no-such-job');
    expect(unknown).toEqual({ status: 404, code: 'TT_ERR_UNKNOWN_JOB' });
    for (const path of paths(jobId)) {
      expect(await status(path), `${path} without a token`).toEqual(unknown);
      expect(await status(path, relay.bob), `${path} as another researcher`).toEqual(unknown);
      expect(await status(path, 'tt_not-a-real-token'), `${path} with a bad token`).toEqual(unknown);
      expect((await status(path, relay.alice)).status, `${path} as its researcher`).toBe(200);
      expect((await status(path, relay.operator)).status, `${path} as an operator`).toBe(200);
    }
  });

  test('is not in the public snapshot, only in its researcher\'s and the operators\'', async () => {
    const ids = async (token?: string) => (await get(relay.url, '/api/ops/snapshot', token)).body.jobs.map((j: { jobId: string }) => j.jobId);
    expect(await ids()).not.toContain(jobId);
    expect(await ids(relay.bob)).not.toContain(jobId);
    expect(await ids(relay.alice)).toContain(jobId);
    expect(await ids(relay.operator)).toContain(jobId);
    const metrics = await (await fetch(`${relay.url}/metrics`)).text();
    expect(metrics).not.toContain(jobId);
  });

  test('another researcher acting on it is told it does not exist', async () => {
    const r = await post(relay.url, `/api/ops/jobs/${jobId}/pause`, relay.bob);
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('TT_ERR_UNKNOWN_JOB');
  });

  test('is public once an operator approves it', async () => {
    expect((await post(relay.url, `/api/ops/jobs/${jobId}/approve`, relay.operator)).status).toBe(200);
    for (const path of paths(jobId)) expect((await status(path)).status, path).toBe(200);
    // the snapshot is computed at most twice a second: the next one lists it
    await until(() => get(relay.url, '/api/ops/snapshot'), (r) => r.body.jobs.some((j: { jobId: string }) => j.jobId === jobId));
  });
});
