// ONNX downloads: a version is exported once, on the worker pool, and every later or concurrent request
// for it is served from that file (counted on /metrics); a pending job's export is nobody else's to fetch.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { get, labelledJson, mlpJob, post, startOpsRelay, submit, type OpsRelay } from '../ops/helpers.ts';

let relay: OpsRelay;
beforeAll(async () => { relay = await startOpsRelay(); });
afterAll(async () => relay?.stop());

async function counter(name: string): Promise<number> {
  const text = await (await fetch(`${relay.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

describe('ONNX export', () => {
  test('two concurrent requests for one version run one export; a third is served from the file', async () => {
    const { jobId } = (await submit(relay.url, relay.alice, mlpJob(), labelledJson())).body;
    await post(relay.url, `/api/ops/jobs/${jobId}/approve`, relay.operator);
    const before = await counter('tabtrain_onnx_exports_total');
    const url = `${relay.url}/api/ops/jobs/${jobId}/versions/0/model.onnx`;
    const [a, b] = await Promise.all([fetch(url), fetch(url)]);
    expect([a.status, b.status]).toEqual([200, 200]);
    const [ba, bb] = [new Uint8Array(await a.arrayBuffer()), new Uint8Array(await b.arrayBuffer())];
    expect(ba.length).toBeGreaterThan(100);
    expect(Buffer.from(bb).equals(Buffer.from(ba))).toBe(true);
    expect(await counter('tabtrain_onnx_exports_total')).toBe(before + 1);

    const c = await fetch(url);
    expect(Buffer.from(await c.arrayBuffer()).equals(Buffer.from(ba))).toBe(true);
    expect(await counter('tabtrain_onnx_exports_total')).toBe(before + 1);
    expect(await counter('tabtrain_onnx_cache_hits_total')).toBeGreaterThanOrEqual(2);
    expect(relay.app.pool.runs.onnx).toBe(1);
  });

  test('a pending job\'s export is 404 without its researcher\'s token, and makes no export', async () => {
    const { jobId } = (await submit(relay.url, relay.alice, mlpJob(), labelledJson())).body;
    const before = await counter('tabtrain_onnx_exports_total');
    const r = await get(relay.url, `/api/ops/jobs/${jobId}/versions/0/model.onnx`);
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('TT_ERR_UNKNOWN_JOB');
    expect(await counter('tabtrain_onnx_exports_total')).toBe(before);
  });
});
