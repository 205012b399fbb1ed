// A volunteer says what its adapter can hold when it asks for work; the relay leases a task only when the
// job's memory plan fits (shared/engine/memory-plan.ts), else 422 naming needed vs available, and the
// volunteer loop checks the plan again itself before it downloads anything. Real relay, real HTTP, the
// real submission path for a job of GPT-2 small's shape (BPE vocabulary, context 1024, width 768, 12
// heads) with 2 of its 12 layers (369 MB of fp32 per version: the test stays light beside others). A model
// wider and deeper than the relay stores per version (shared/jobs/spec.ts LIMITS.versionBytes, 2 GiB) is
// refused with a 400 below.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { mobyDickText } from '../../server/data/demo-text.ts';
import { planMemory } from '../../shared/engine/memory-plan.ts';
import { checkVersionSize } from '../../shared/jobs/spec.ts';
import { createCpuTrainer } from '../../shared/train/cpu.ts';
import { runVolunteer, type VolunteerEvent } from '../../shared/volunteer/loop.ts';
import { memoryLoopStore } from '../../shared/volunteer/store.ts';
import { registerSigned } from '../helpers/identity.ts';
import { post, startOpsRelay, submit, type OpsRelay } from './helpers.ts';

const gpt2small = { kind: 'gpt', context: 1024, layers: 12, heads: 12, width: 768 } as const;
const shortGpt2 = { ...gpt2small, layers: 2 };
const GiB = 2 ** 30;
const big = { maxBufferSize: 4 * GiB, maxStorageBufferBindingSize: 2 * GiB };
const webgpuDefault = { maxBufferSize: 256 * 2 ** 20, maxStorageBufferBindingSize: 128 * 2 ** 20 };
// below the 67 MB logits chunk (333 rows of the 50,257-token vocabulary), which is one binding
const tiny = { maxBufferSize: 32 * 2 ** 20, maxStorageBufferBindingSize: 32 * 2 ** 20 };

let relay: OpsRelay;
let jobId: string;
beforeAll(async () => {
  // preparing and storing a version this size takes a while on a busy machine: no request deadline,
  // and no idle-socket one (the submission's answer can take over a minute to start)
  relay = await startOpsRelay({ timeouts: { requestMs: 0, idleMs: 0 } });
  const r = await submit(relay.url, relay.alice, {
    // room in a round for every task these tests lease, so none waits on a lease's expiry
    name: 'gpt-2 small, 2 layers', model: shortGpt2, hyperparameters: { steps: 1, batchSize: 1, updatesPerRound: 8 },
    dataset: { format: 'text', tokenizer: 'bpe', shards: 1, heldOutFraction: 0.5 },
  }, mobyDickText().slice(0, 40_000));
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  expect(r.body.paramCount).toBe(92_158_464);
  jobId = r.body.jobId;
  expect((await post(relay.url, `/api/ops/jobs/${jobId}/approve`, relay.operator)).status).toBe(200);
}, 600_000);
afterAll(async () => { await relay?.stop(); });

const ask = async (adapter?: object) => {
  const v = await registerSigned(relay.url);
  const res = await fetch(`${relay.url}/api/jobs/${jobId}/tasks`, {
    method: 'POST', headers: await v.taskRequestHeaders(jobId), body: JSON.stringify({ volunteerId: v.volunteerId, ...(adapter ? { adapter } : {}) }),
  });
  return { status: res.status, body: await res.json() as any };
};

test('a model over the bytes one version may hold is refused with a 400 naming the model, not a relay fault', async () => {
  const r = await submit(relay.url, relay.bob, {
    // 48 layers of width 1024 at a short context (one task stays under the GPT multiply-add cap)
    name: 'too big', model: { ...gpt2small, context: 128, layers: 48, heads: 16, width: 1024 }, hyperparameters: { steps: 1, batchSize: 1 },
    dataset: { format: 'text', tokenizer: 'bpe', shards: 1, heldOutFraction: 0.5 },
  }, mobyDickText().slice(0, 40_000));
  expect(r.status, JSON.stringify(r.body)).toBe(400);
  expect(r.body.error.code).toBe('TT_ERR_JOB_SPEC');
  // a typical volunteer's GPU runs out before the relay's storage does (the version check is below)
  expect(r.body.error.message).toMatch(/^model: does not fit a typical volunteer/);
}, 300_000);

test('a version over the 2 GiB the relay stores is refused naming the model', () => {
  const over = { ...gpt2small, context: 128, layers: 48, heads: 16, width: 1024, vocab: 50_257 };
  expect(() => checkVersionSize(over)).toThrow(/^model: has \d+ parameters: one version is \d+ bytes of fp32, over the 2147483648 bytes this relay stores per version/);
  // GPT-2 small with its untied head (652 MB) was over SQLite's value limit; it is stored now
  expect(() => checkVersionSize({ ...gpt2small, vocab: 50_257 })).not.toThrow();
});

test('an adapter that holds this model at the job\'s batch size gets its first task', async () => {
  const r = await ask(big);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  expect(r.body).toMatchObject({ jobId, baseVersion: 0, batchSize: 1, model: { ...shortGpt2, vocab: 50_257 } });
});

test('an adapter with WebGPU\'s default limits gets a task: θ, the 154 MB embedding and the head are split across bindings', async () => {
  const r = await ask(webgpuDefault);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  expect(r.body).toMatchObject({ jobId, batchSize: 1 });
});

test('an adapter whose binding cannot hold the logits chunk is refused, naming needed vs available, and no task is leased', async () => {
  const r = await ask(tiny);
  expect(r.status).toBe(422);
  expect(r.body.error.code).toBe('TT_ERR_ADAPTER_TOO_SMALL');
  const largest = planMemory({ ...shortGpt2, vocab: 50_257 }, 1).largestBuffer;
  expect(largest.name).toBe('gpt.logits');
  expect(r.body.error.message).toContain(`its largest buffer (gpt.logits) needs ${largest.bytes} bytes`);
  expect(r.body.error.message).toContain(`the adapter allows ${32 * 2 ** 20} bytes`);
  // tasks leased in all: the first test's and the default-limits adapter's
  expect((relay.app.db.prepare('SELECT COUNT(*) AS n FROM tasks WHERE job_id = ?').get(jobId) as { n: number }).n).toBe(2);
});

test('a memory budget stated by the volunteer counts too, and a CPU volunteer (no adapter) is not checked', async () => {
  const small = await ask({ ...big, memoryBytes: GiB });
  expect(small.status).toBe(422);
  expect(small.body.error.message).toMatch(/training needs \d+ bytes .* the adapter budget is 1073741824 bytes/);
  expect((await ask()).status).toBe(200);
});

test('a bad adapter report is a 400 naming the field', async () => {
  const r = await ask({ maxBufferSize: -1, maxStorageBufferBindingSize: 1 });
  expect(r.status).toBe(400);
  expect(r.body.error.message).toMatch(/adapter/);
});

test('the volunteer loop checks the plan itself before downloading anything, and says why on its state', async () => {
  // a relay that ignored the report (older, or not checking): the adapter field is taken out on the way
  const paths: string[] = [];
  const strip = (u: string, init?: RequestInit) => {
    paths.push(new URL(u).pathname);
    if (typeof init?.body === 'string' && init.body.includes('"adapter"')) {
      const { adapter: _, ...rest } = JSON.parse(init.body);
      init = { ...init, body: JSON.stringify(rest) };
    }
    return fetch(u, init);
  };
  const events: VolunteerEvent[] = [];
  const abort = new AbortController();
  const run = runVolunteer({
    server: relay.url, fetch: strip, createTrainer: createCpuTrainer, store: memoryLoopStore(), signal: abort.signal, jobId,
    adapter: tiny, onEvent: (e) => { events.push(e); if (e.type === 'unfit') abort.abort(); },
  });
  await run;
  const unfit = events.find((e) => e.type === 'unfit');
  expect(unfit).toMatchObject({ jobId, reason: expect.stringContaining('its largest buffer (gpt.logits) needs') });
  expect(events).toContainEqual(expect.objectContaining({ type: 'dropped', code: 'TT_CLIENT_ADAPTER_TOO_SMALL' }));
  expect(events).toContainEqual(expect.objectContaining({ type: 'state', state: 'waiting', detail: expect.stringContaining(`this device cannot train job ${jobId}`) }));
  expect(paths.some((p) => p.endsWith('/tasks'))).toBe(true);
  expect(paths.filter((p) => /\/(params|manifest|delta|shards\/\d+)$/.test(p))).toEqual([]);
});
