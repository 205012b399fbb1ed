// Per-researcher limits on submissions: a researcher may hold MAX_PENDING_JOBS jobs waiting for approval
// (the next is 429 naming what to do), and may submit SUBMIT_BURST jobs at once before a 429 with
// Retry-After. Operators are not limited. Each refusal happens before any dataset work.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MAX_PENDING_JOBS, SUBMIT_BURST } from '../../server/ops/submit.ts';
import { labelledJson, mlpJob, post, startOpsRelay, submit, type OpsRelay } from '../ops/helpers.ts';

let relay: OpsRelay;
beforeAll(async () => { relay = await startOpsRelay(); });
afterAll(async () => relay?.stop());

describe('submission limits', () => {
  test('pending jobs per researcher are capped, and approval frees a slot', async () => {
    const ids: string[] = [];
    for (let i = 0; i < MAX_PENDING_JOBS; i++) {
      const s = await submit(relay.url, relay.bob, mlpJob(), labelledJson());
      expect(s.status, JSON.stringify(s.body)).toBe(201);
      ids.push(s.body.jobId);
    }
    const datasetsBefore = relay.app.pool.runs.dataset;
    const over = await submit(relay.url, relay.bob, mlpJob(), labelledJson());
    expect(over.status).toBe(429);
    expect(over.body.error.code).toBe('TT_ERR_PENDING_LIMIT');
    expect(over.body.error.message).toMatch(/waiting for approval.*ask an operator/);
    expect(relay.app.pool.runs.dataset).toBe(datasetsBefore);
    // another researcher is not affected, nor an operator
    expect((await submit(relay.url, relay.alice, mlpJob(), labelledJson())).status).toBe(201);
    await post(relay.url, `/api/ops/jobs/${ids[0]}/approve`, relay.operator);
    expect((await submit(relay.url, relay.bob, mlpJob(), labelledJson())).status).toBe(201);
  });

  test('a burst of submissions is rate limited with Retry-After', async () => {
    // alice submitted once above; approve as she goes so the pending cap stays out of the way
    let accepted = 1;
    for (;;) {
      const form = new FormData();
      form.set('spec', JSON.stringify(mlpJob()));
      form.set('data', new Blob([labelledJson()]), 'data.json');
      const r = await fetch(`${relay.url}/api/ops/jobs`, { method: 'POST', headers: { authorization: `Bearer ${relay.alice}` }, body: form });
      const body = await r.json() as { jobId: string; error?: { code: string; message: string } };
      if (r.status === 429) {
        expect(accepted).toBe(SUBMIT_BURST);
        expect(body.error!.code).toBe('TT_ERR_RATE_LIMITED');
        expect(body.error!.message).toMatch(/retry in \d+ s/);
        expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
        break;
      }
      expect(r.status).toBe(201);
      accepted++;
      expect(accepted).toBeLessThanOrEqual(SUBMIT_BURST);
      await post(relay.url, `/api/ops/jobs/${body.jobId}/approve`, relay.operator);
    }
    // operators are not limited
    expect((await submit(relay.url, relay.operator, mlpJob(), labelledJson())).status).toBe(201);
  });
});
