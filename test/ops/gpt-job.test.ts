// A submitted GPT char-level job trains end to end with simulated volunteers (the shared volunteer loop
// on the CPU reference): token shards reach the loop, rounds are audited, held-out loss falls.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startVolunteers, type Volunteers } from '../helpers/relay.ts';
import { get, post, startOpsRelay, submit, until, type OpsRelay } from './helpers.ts';

const text = 'the cat sat on the mat. the dog sat on the log. the cat ran to the dog. '.repeat(60);
let relay: OpsRelay, volunteers: Volunteers | undefined;
beforeAll(async () => { relay = await startOpsRelay(); });
afterAll(async () => { await volunteers?.stop(); await relay?.stop(); });

describe('GPT job with simulated volunteers', () => {
  test('held-out loss falls from about ln(vocab) to below 1.5 nats; after a rollback the volunteers continue from it; rounds are audited', async () => {
    const job = { name: 'cat gpt', model: { kind: 'gpt', context: 16, layers: 1, heads: 2, width: 32 },
      hyperparameters: { steps: 20, batchSize: 8, adamw: { lr: 0.003 }, updatesPerRound: 2, quorum: 1, aggregator: 'mean' },
      dataset: { format: 'text', tokenizer: 'char', shards: 2 } };
    const s = await submit(relay.url, relay.alice, job, text);
    const jobId = s.body.jobId;
    await post(relay.url, `/api/ops/jobs/${jobId}/approve`, relay.operator);
    volunteers = startVolunteers(relay.url, 2, { jobId });
    const evals = (await until(() => get(relay.url, `/api/jobs/${jobId}/evals`), (r) => r.body.evals.some((e: { loss: number }) => e.loss < 1.5) && r.body.evals.length >= 3, 500)).body.evals;

    // Roll back to version 1 while the volunteers keep working: they continue from it.
    const store = relay.app.store;
    const v1 = store.getVersion(jobId, 1)!;
    const oldV2 = store.getVersion(jobId, 2)!.hash;
    const before = store.getJob(jobId)!.version;
    expect((await post(relay.url, `/api/ops/jobs/${jobId}/rollback`, relay.alice, { version: 1 })).body.version).toBe(1);
    const rolledAt = Date.now();
    await until(() => get(relay.url, `/api/jobs/${jobId}`), (r) => r.body.version >= 3, 200);
    await volunteers.stop();
    volunteers = undefined;
    expect(before).toBeGreaterThanOrEqual(2);
    expect(store.getVersion(jobId, 1)!.hash).toBe(v1.hash);
    expect(store.getVersion(jobId, 2)!.hash).not.toBe(oldV2);
    // Updates accepted after the rollback were never trained from a dropped version (base ≤ the round it
    // joined), and volunteers did train from the restored version 1 onward.
    const after = store.listUpdates(jobId).filter((u) => u.acceptedAt > rolledAt);
    expect(after.length).toBeGreaterThan(0);
    expect(after.every((u) => u.baseVersion <= u.round)).toBe(true);
    expect(after.some((u) => u.baseVersion >= 1)).toBe(true);
    expect(evals[0].loss).toBeCloseTo(Math.log(s.body.model.vocab), 0);
    const entries = (await get(relay.url, `/api/ops/audit?jobId=${jobId}`, relay.operator)).body.entries as { action: string; detail: { version: number; updates: string[]; to: number } }[];
    const rb = entries.findIndex((e) => e.action === 'job.rollback');
    expect(entries[rb].detail.to).toBe(1);
    const rounds = entries.filter((e) => e.action === 'round.accept');
    expect(rounds.map((e) => e.detail.version).slice(0, before)).toEqual(Array.from({ length: before }, (_, i) => i + 1));
    expect(entries.slice(rb + 1).filter((e) => e.action === 'round.accept')[0].detail.version).toBe(2);
    expect(rounds.every((e) => e.detail.updates.length >= 1)).toBe(true);
  });
});
