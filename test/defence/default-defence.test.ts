// The defence a submitted job gets when its spec names none (server/defence/default.ts): the usefulness check
// in enforce mode (with the relative floor) in front of the mean where the relay can afford to score the
// model, Multi-Krum alone where it cannot.
import { describe, expect, it } from 'vitest';
import { checkSubmission, checkUsefulness, LIMITS, usefulnessMultiplyAdds, type JobSubmission } from '../../shared/jobs/spec.ts';
import { defaultMlp, paramCount, type GptConfig, type MlpConfig } from '../../shared/models/config.ts';
import { DEFAULT_RELATIVE_SHARE, defaultUsefulnessMode, resolveJobHyperparameters } from '../../server/defence/default.ts';
import { refusal, relativeFloor } from '../../server/defence/usefulness.ts';

const mlpSpec = (hyperparameters?: JobSubmission['hyperparameters']) => checkSubmission({
  name: 'digits', model: { kind: 'mlp', hidden: [128] }, dataset: { format: 'labelled' }, ...(hyperparameters ? { hyperparameters } : {}),
});
const tinyGpt: GptConfig = { kind: 'gpt', context: 8, layers: 1, heads: 2, width: 16, vocab: 40 };

describe('the default defence of a submitted job', () => {
  it('an MNIST-size MLP with no defence named gets the usefulness check in enforce mode, minDrop 0, relative floor 0.25, in front of the mean', () => {
    const h = resolveJobHyperparameters(defaultMlp, mlpSpec());
    expect(h.aggregator).toBe('mean');
    expect(h.preAggregators ?? []).toEqual([]);
    expect(h.usefulness).toEqual({ mode: 'enforce', minDrop: 0, relativeShare: DEFAULT_RELATIVE_SHARE });
    expect(DEFAULT_RELATIVE_SHARE).toBe(0.25);
    expect(() => checkUsefulness(defaultMlp, h)).not.toThrow();
  });

  it('a mode the spec names is kept, off and score included; a minDrop alone takes the default mode', () => {
    expect(resolveJobHyperparameters(defaultMlp, mlpSpec({ usefulness: { mode: 'off' } })).usefulness).toEqual({ mode: 'off', minDrop: 0 });
    expect(resolveJobHyperparameters(defaultMlp, mlpSpec({ usefulness: { mode: 'score' } })).usefulness).toEqual({ mode: 'score', minDrop: 0 });
    expect(resolveJobHyperparameters(defaultMlp, mlpSpec({ usefulness: { minDrop: -0.05 } })).usefulness).toEqual({ mode: 'enforce', minDrop: -0.05, relativeShare: 0.25 });
    expect(resolveJobHyperparameters(defaultMlp, mlpSpec({ usefulness: { mode: 'enforce' } })).usefulness).toEqual({ mode: 'enforce', minDrop: 0 });
    // the rest of the defence is the spec's when it names one; a pre-aggregator alone keeps the job default rule
    const h = resolveJobHyperparameters(defaultMlp, mlpSpec({ aggregator: 'centered-clip', preAggregators: ['nnm'] }));
    expect([h.aggregator, h.preAggregators, h.usefulness?.mode]).toEqual(['centered-clip', ['nnm'], 'enforce']);
    expect(resolveJobHyperparameters(defaultMlp, mlpSpec({ preAggregators: ['nnm'] })).aggregator).toBe('multi-krum');
    // without the check the rule is the job default, Multi-Krum
    expect(resolveJobHyperparameters(defaultMlp, mlpSpec({ usefulness: { mode: 'off' } })).aggregator).toBe('multi-krum');
  });

  it('switches the check off exactly where scoring one update would pass LIMITS.usefulnessMultiplyAdds, so the default is never refused at submission', () => {
    const model: MlpConfig = { kind: 'mlp', inputs: 300, hidden: [200], classes: 10 };
    const most = Math.floor(LIMITS.usefulnessMultiplyAdds / (2 * paramCount(model)));
    expect(usefulnessMultiplyAdds(model, most)).toBeLessThanOrEqual(LIMITS.usefulnessMultiplyAdds);
    expect(defaultUsefulnessMode(model, most)).toBe('enforce');
    expect(defaultUsefulnessMode(model, most + 1)).toBe('off');
    for (const batchSize of [most, most + 1]) {
      const h = resolveJobHyperparameters(model, mlpSpec({ batchSize }));
      expect(() => checkUsefulness(model, h)).not.toThrow();
    }
    // asking for it on the larger batch is still refused, naming the field
    expect(() => checkUsefulness(model, resolveJobHyperparameters(model, mlpSpec({ batchSize: most + 1, usefulness: { mode: 'enforce' } }))))
      .toThrow(/^hyperparameters\.usefulness: scoring one update costs/);
  });

  it('a GPT job is not scored by default, even one small enough to afford it; it can ask for it', () => {
    expect(usefulnessMultiplyAdds(tinyGpt, 32)).toBeLessThan(LIMITS.usefulnessMultiplyAdds);
    const gptSpec = (hyperparameters?: JobSubmission['hyperparameters']) => checkSubmission({
      name: 'fox', model: { kind: 'gpt', context: 8, layers: 1, heads: 2, width: 16 }, dataset: { format: 'text', tokenizer: 'char' }, ...(hyperparameters ? { hyperparameters } : {}),
    });
    expect(resolveJobHyperparameters(tinyGpt, gptSpec()).usefulness).toEqual({ mode: 'off', minDrop: 0 });
    expect(resolveJobHyperparameters(tinyGpt, gptSpec()).aggregator).toBe('multi-krum');
    expect(resolveJobHyperparameters(tinyGpt, gptSpec({ usefulness: { mode: 'enforce' } })).usefulness).toEqual({ mode: 'enforce', minDrop: 0 });
  });
});

describe('the refusal rule the relay and the attack bench share', () => {
  it('refuses under enforce a drop below minDrop or NaN, and never under score or off', () => {
    const enforce = { mode: 'enforce' as const, minDrop: 0.01 };
    expect(refusal(enforce, { drop: 0.009, before: 1 })).toMatch(/^a drop of 0\.0090 nats, below the job's minimum of 0\.01$/);
    expect(refusal(enforce, { drop: 0.01, before: 1 })).toBeUndefined();
    expect(refusal(enforce, { drop: Number.NaN, before: 1 })).toBeDefined();
    expect(refusal({ mode: 'score', minDrop: 0.01 }, { drop: -5, before: 1 })).toBeUndefined();
    expect(refusal({ mode: 'off', minDrop: 0.01 }, { drop: -5, before: 1 })).toBeUndefined();
  });

  it('with a relativeShare, refuses a relative drop under that share of the recent median, once 8 are known', () => {
    const setting = { mode: 'enforce' as const, minDrop: 0, relativeShare: 0.25 };
    const recent = [0.4, 0.5, 0.6, 0.2, 0.45, 0.55, 0.5, 0.3]; // median 0.475, floor 0.11875
    expect(relativeFloor(recent, 0.25)).toBeCloseTo(0.11875, 10);
    expect(refusal(setting, { drop: 0.1, before: 1 }, recent)).toMatch(/^a drop of 10\.0 % of the loss, below 0\.25 × the median of the job's last 64 accepted updates \(11\.9 %\)$/);
    expect(refusal(setting, { drop: 0.24, before: 2 }, recent)).toBeUndefined(); // 12 % of the loss before
    // seven known: no floor yet, only minDrop
    expect(refusal(setting, { drop: 0.01, before: 1 }, recent.slice(1))).toBeUndefined();
    // non-finite history entries do not count toward the eight
    expect(relativeFloor([...recent.slice(1), Number.NaN], 0.25)).toBeUndefined();
    // without a share the same history changes nothing
    expect(refusal({ mode: 'enforce', minDrop: 0 }, { drop: 0.01, before: 1 }, recent)).toBeUndefined();
  });
});
