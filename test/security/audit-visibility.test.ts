// Who reads the audit log (docs/jobs.md): operators everything; a researcher the entries about approved
// jobs and its own, never another researcher's pending job, and token entries without other tokens'
// names or ids. No token: 401.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { get, labelledJson, mlpJob, startOpsRelay, submit, type OpsRelay } from '../ops/helpers.ts';

let relay: OpsRelay;
beforeAll(async () => { relay = await startOpsRelay(); });
afterAll(async () => relay?.stop());

type Entry = { seq: number; action: string; jobId: string | null; detail: Record<string, unknown> };
const entries = async (token?: string): Promise<Entry[]> => (await get(relay.url, '/api/ops/audit?limit=1000', token)).body.entries;

describe('audit log visibility', () => {
  test('a researcher does not see another researcher\'s pending job or token names; its own and operators see all', async () => {
    const { jobId } = (await submit(relay.url, relay.alice, mlpJob({ name: 'alice private' }), labelledJson())).body;
    const all = await entries(relay.operator);
    expect(all.some((e) => e.jobId === jobId && e.action === 'job.submit')).toBe(true);
    expect(all.filter((e) => e.action === 'token.create').map((e) => e.detail.name)).toEqual(expect.arrayContaining(['olga', 'alice', 'bob']));

    const bobs = await entries(relay.bob);
    expect(bobs.some((e) => e.jobId === jobId)).toBe(false);
    expect(JSON.stringify(bobs)).not.toContain('alice');
    const tokens = bobs.filter((e) => e.action === 'token.create');
    expect(tokens.length).toBe(3);
    expect(tokens.filter((e) => e.detail.name !== undefined).map((e) => e.detail.name)).toEqual(['bob']);
    expect((await get(relay.url, `/api/ops/audit?jobId=${jobId}`, relay.bob)).body.entries).toEqual([]);

    const alices = await entries(relay.alice);
    expect(alices.some((e) => e.jobId === jobId && e.action === 'job.submit')).toBe(true);
    expect((await get(relay.url, '/api/ops/audit')).status).toBe(401);
  });
});
