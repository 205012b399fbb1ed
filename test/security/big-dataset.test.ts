// Labelled datasets of hundreds of thousands of rows: a 300k-row CSV (1.2 MB) used to overflow the call
// stack (Math.max(...labels)) and answer 500. It is accepted, prepared on the worker pool, and its shards
// hold every row.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { prepareDataset } from '../../shared/jobs/dataset.ts';
import { checkSubmission } from '../../shared/jobs/spec.ts';
import { decodeShard } from '../../shared/data/shard.ts';
import { mlpJob, startOpsRelay, submit, type OpsRelay } from '../ops/helpers.ts';

const ROWS = 300_000;
const csv = (rows: number) => Array.from({ length: rows }, (_, i) => `${i % 3},${i % 2}`).join('\n') + '\n';

let relay: OpsRelay;
beforeAll(async () => { relay = await startOpsRelay(); });
afterAll(async () => relay?.stop());

describe('a big labelled dataset', () => {
  test('prepares 300k rows without overflowing the stack', () => {
    const d = prepareDataset(checkSubmission(mlpJob()), new TextEncoder().encode(csv(ROWS)));
    if (d.kind !== 'labelled') throw new Error('labelled expected');
    expect(d.classes).toBe(3);
    expect(d.rows).toBe(ROWS);
    expect(d.heldOut.n + d.train.reduce((a, s) => a + s.n, 0)).toBe(ROWS);
  });

  test('a 300k-row CSV is accepted (201), prepared on the worker pool, its rows all in the shards', async () => {
    const data = csv(ROWS);
    expect(data.length).toBeGreaterThan(1_000_000);
    const s = await submit(relay.url, relay.alice, mlpJob(), data, 'data.csv');
    expect(s.status, JSON.stringify(s.body)).toBe(201);
    expect(s.body.model).toMatchObject({ kind: 'mlp', inputs: 1, classes: 3 });
    expect(relay.app.pool.runs.dataset).toBe(1);
    const shard = decodeShard(new Uint8Array(await (await fetch(`${relay.url}/api/jobs/${s.body.jobId}/shards/0`, { headers: { authorization: `Bearer ${relay.alice}` } })).arrayBuffer()));
    expect(shard.n).toBe(Math.floor((ROWS - Math.floor(ROWS * 0.25)) / 2));
  });

  test('a bad row deep in a big CSV is refused with 400 naming the row', async () => {
    const rows = csv(200_000).split('\n');
    rows[150_000] = '1,abc';
    const s = await submit(relay.url, relay.alice, mlpJob(), rows.join('\n'), 'data.csv');
    expect(s.status).toBe(400);
    expect(s.body.error.message).toMatch(/^dataset row 150001: value 0 is null/);
  });
});
