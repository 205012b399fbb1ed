// The usefulness score's "own seeded batch": the relay reads it from the encoded shard it serves, and it
// must be exactly the batch the volunteer's trainer drew (taskBatch of the decoded shard, inner step 0),
// for labelled shards (MLP) and token shards (GPT, 1- and 2-byte ids). Plus the score of a GPT update.
import { describe, expect, it } from 'vitest';
import { encodeShard } from '../../shared/data/shard.ts';
import { decodeTaskData, taskBatch } from '../../shared/data/task-data.ts';
import { encodeTokenShard } from '../../shared/data/token-shard.ts';
import { checkUsefulness, SpecError } from '../../shared/jobs/spec.ts';
import { defaultMlp, initParams, type GptConfig, type MlpConfig } from '../../shared/models/config.ts';
import { mnistHyperparameters } from '../../server/default-job.ts';
import { gptLossAndGrad } from '../../shared/reference/gpt.ts';
import { createCpuTrainer } from '../../shared/train/cpu.ts';
import { rng } from '../../shared/util/rng.ts';
import { dataset } from '../../server/data/datasets.ts';
import { batchLoss, ownBatch, usefulnessScore } from '../../server/defence/usefulness.ts';

const seeds = [0, 1, 977, 2 ** 31 - 1];

describe('the relay rebuilds an update\'s own batch exactly as the trainer drew it', () => {
  it('labelled shard (MNIST, as served): equal to the decoded shard\'s batch of inner step 0, for every seed', () => {
    const bytes = dataset('mnist').shardBytes[3];
    const decoded = decodeTaskData(bytes);
    for (const seed of seeds) {
      const own = ownBatch(defaultMlp, bytes, seed, 32);
      expect(own).toEqual(taskBatch(decoded, defaultMlp, seed, 0, 32));
      // not vacuous: another step's batch differs
      expect(own).not.toEqual(taskBatch(decoded, defaultMlp, seed, 1, 32));
    }
  });

  it('labelled shard with values that are not whole pixels: the same /255 floats as decodeShard', () => {
    const r = rng(5);
    const n = 50, inputs = 7;
    const bytes = encodeShard({ n, inputs, classes: 4, x: Float32Array.from({ length: n * inputs }, () => r.next()), y: Int32Array.from({ length: n }, () => r.int(4)) });
    const model: MlpConfig = { kind: 'mlp', inputs, hidden: [8], classes: 4 };
    for (const seed of seeds) expect(ownBatch(model, bytes, seed, 64)).toEqual(taskBatch(decodeTaskData(bytes), model, seed, 0, 64));
  });

  it.each([[40, '1-byte'], [300, '2-byte']])('token shard with vocab %i (%s ids): equal to the decoded shard\'s batch', (vocab) => {
    const r = rng(vocab);
    const bytes = encodeTokenShard({ vocab, tokens: Int32Array.from({ length: 500 }, () => r.int(vocab)) });
    const model: GptConfig = { kind: 'gpt', vocab, context: 16, layers: 1, heads: 2, width: 16 };
    for (const seed of seeds) {
      const own = ownBatch(model, bytes, seed, 8);
      expect(own).toEqual(taskBatch(decodeTaskData(bytes), model, seed, 0, 8));
      expect(own).not.toEqual(taskBatch(decodeTaskData(bytes), model, seed, 1, 8));
    }
  });
});

describe('usefulness of a GPT update', () => {
  const model: GptConfig = { kind: 'gpt', vocab: 12, context: 8, layers: 1, heads: 2, width: 16 };
  // a repetitive "text": next tokens are easy to learn, so a few steps lower the loss clearly
  const bytes = encodeTokenShard({ vocab: 12, tokens: Int32Array.from({ length: 400 }, (_, i) => (i * 5) % 12) });

  it('scores with the loss the trainer computes; an honest update lowers it, its sign flip raises it', async () => {
    const base = initParams(model, 2);
    const batch = ownBatch(model, bytes, 11, 4);
    if (batch.kind !== 'tokens') throw new Error('expected tokens');
    expect(batchLoss(model, base, batch)).toBeCloseTo(gptLossAndGrad(model, base, batch.tokens, batch.n).loss, 6);
    const t = createCpuTrainer(model, { batchSize: 4, adamw: { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, clipNorm: 1 });
    await t.load(base);
    const data = decodeTaskData(bytes);
    for (let s = 0; s < 5; s++) await t.step(taskBatch(data, model, 11, s, 4));
    const delta = await t.delta();
    expect(usefulnessScore(model, base, { kind: 'dense', values: delta }, batch).drop).toBeGreaterThan(0.05);
    expect(usefulnessScore(model, base, { kind: 'dense', values: delta.map((x) => -x) }, batch).drop).toBeLessThan(-0.05);
  });
});

describe('what a job may ask of the relay', () => {
  const fieldOf = (f: () => unknown) => { try { f(); } catch (e) { if (e instanceof SpecError) return e.message; throw e; } return 'no error'; };
  it('an MNIST MLP may enforce; a GPT whose two forward passes are too costly is refused naming the field', () => {
    expect(fieldOf(() => checkUsefulness(defaultMlp, { ...mnistHyperparameters, usefulness: { mode: 'enforce', minDrop: 0 } }))).toBe('no error');
    const gpt: GptConfig = { kind: 'gpt', vocab: 65, context: 256, layers: 4, heads: 4, width: 256 };
    expect(fieldOf(() => checkUsefulness(gpt, { ...mnistHyperparameters, usefulness: { mode: 'score', minDrop: 0 } }))).toMatch(/^hyperparameters\.usefulness: scoring one update costs \d+ M multiply-adds/);
    // off costs nothing, so any model may leave it off
    expect(fieldOf(() => checkUsefulness(gpt, { ...mnistHyperparameters, usefulness: { mode: 'off', minDrop: 0 } }))).toBe('no error');
    expect(fieldOf(() => checkUsefulness(gpt, mnistHyperparameters))).toBe('no error');
  });
});
