// The defence a submitted job gets when its spec names none (server/defence/default.ts): Multi-Krum, with
// the usefulness check in enforce mode where the relay can afford to score the model.
import { describe, expect, it } from 'vitest';
import { checkSubmission, checkUsefulness, LIMITS, usefulnessMultiplyAdds, type JobSubmission } from '../../shared/jobs/spec.ts';
import { defaultMlp, paramCount, type GptConfig, type MlpConfig } from '../../shared/models/config.ts';
import { defaultUsefulnessMode, resolveJobHyperparameters } from '../../server/defence/default.ts';
import { refuses } from '../../server/defence/usefulness.ts';

const mlpSpec = (hyperparameters?: JobSubmission['hyperparameters']) => checkSubmission({
  name: 'digits', model: { kind: 'mlp', hidden: [128] }, dataset: { format: 'labelled' }, ...(hyperparameters ? { hyperparameters } : {}),
});
const tinyGpt: GptConfig = { kind: 'gpt', context: 8, layers: 1, heads: 2, width: 16, vocab: 40 };

describe('the default defence of a submitted job', () => {
  it('an MNIST-size MLP with no defence named gets Multi-Krum and the usefulness check in enforce mode, minDrop 0', () => {
    const h = resolveJobHyperparameters(defaultMlp, mlpSpec());
    expect(h.aggregator).toBe('multi-krum');
    expect(h.preAggregators ?? []).toEqual([]);
    expect(h.usefulness).toEqual({ mode: 'enforce', minDrop: 0 });
    expect(() => checkUsefulness(defaultMlp, h)).not.toThrow();
  });

  it('a mode the spec names is kept, off and score included; a minDrop alone takes the default mode', () => {
    expect(resolveJobHyperparameters(defaultMlp, mlpSpec({ usefulness: { mode: 'off' } })).usefulness).toEqual({ mode: 'off', minDrop: 0 });
    expect(resolveJobHyperparameters(defaultMlp, mlpSpec({ usefulness: { mode: 'score' } })).usefulness).toEqual({ mode: 'score', minDrop: 0 });
    expect(resolveJobHyperparameters(defaultMlp, mlpSpec({ usefulness: { minDrop: -0.05 } })).usefulness).toEqual({ mode: 'enforce', minDrop: -0.05 });
    // the rest of the defence is the spec's when it names one
    const h = resolveJobHyperparameters(defaultMlp, mlpSpec({ aggregator: 'centered-clip', preAggregators: ['nnm'] }));
    expect([h.aggregator, h.preAggregators, h.usefulness?.mode]).toEqual(['centered-clip', ['nnm'], 'enforce']);
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
    expect(resolveJobHyperparameters(tinyGpt, gptSpec({ usefulness: { mode: 'enforce' } })).usefulness).toEqual({ mode: 'enforce', minDrop: 0 });
  });
});

describe('the refusal rule the relay and the attack bench share', () => {
  it('refuses under enforce a drop below minDrop or NaN, and never under score or off', () => {
    const enforce = { mode: 'enforce' as const, minDrop: 0.01 };
    expect(refuses(enforce, { drop: 0.009 })).toBe(true);
    expect(refuses(enforce, { drop: 0.01 })).toBe(false);
    expect(refuses(enforce, { drop: Number.NaN })).toBe(true);
    expect(refuses({ mode: 'score', minDrop: 0.01 }, { drop: -5 })).toBe(false);
    expect(refuses({ mode: 'off', minDrop: 0.01 }, { drop: -5 })).toBe(false);
  });
});
