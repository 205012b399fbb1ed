// The spine end to end: four simulated volunteers train the default MNIST job over real HTTP until
// the relay's held-out evaluation reaches 90 %.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bestAccuracy, evals, startRelay, startVolunteers, waitFor, type TestRelay } from '../helpers/relay.ts';

describe('training over real HTTP', () => {
  let relay: TestRelay;
  beforeAll(async () => { relay = await startRelay(); });
  afterAll(async () => { await relay.stop(); });

  it('4 simulated volunteers bring the default job to at least 90 % held-out accuracy', async () => {
    const vs = startVolunteers(relay.url, 4);
    const reached = await waitFor(() => evals(relay.url), (es) => bestAccuracy(es) >= 0.9);
    await vs.stop();
    expect(bestAccuracy(reached)).toBeGreaterThanOrEqual(0.9);
    // it got there by rounds of aggregated updates, with compressed uploads
    const uploads = vs.events.filter((e) => e.type === 'uploaded');
    expect(reached.at(-1)!.version).toBeGreaterThanOrEqual(2);
    expect(uploads.length).toBeGreaterThanOrEqual(8);
    for (const u of uploads) expect(u.bytes).toBeLessThan(u.denseBytes / 3.5);
    expect(vs.events.filter((e) => e.type === 'error')).toEqual([]);
    // every version got a checkpoint with its evaluation
    const job = await (await fetch(`${relay.url}/api/jobs/mnist-mlp`)).json() as { version: number };
    const last = await fetch(`${relay.url}/api/jobs/mnist-mlp/versions/${job.version}/params`);
    expect(last.status).toBe(200);
    expect((await last.arrayBuffer()).byteLength).toBe(101_770 * 4);
    // the relay serves the volunteer page and its metrics
    const page = await fetch(`${relay.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(await page.text()).toMatch(/Tabtrain/);
    const metrics = await (await fetch(`${relay.url}/metrics`)).text();
    expect(metrics).toMatch(/tabtrain_job_version\{job="mnist-mlp"\} [1-9]/);
    expect(metrics).toMatch(/tabtrain_updates_accepted_total\{job="mnist-mlp"\} [1-9]/);
  });
});
