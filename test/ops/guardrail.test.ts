// The loss-regression rule alone: compared with the best earlier version, not merely the previous one.
import { expect, test } from 'vitest';
import { lossRegression } from '../../server/ops/guardrail.ts';

const e = (version: number, loss: number) => ({ version, loss, accuracy: 0, at: version });

test('flags a rise above the best earlier loss past the threshold, and nothing within it', () => {
  const earlier = [e(0, 3), e(1, 2), e(2, 2.3)];
  expect(lossRegression(earlier, e(3, 2.4), 0.5)).toBeNull();
  expect(lossRegression(earlier, e(3, 2.6), 0.5)).toMatchObject({ version: 3, bestVersion: 1, bestLoss: 2, maxLossRise: 0.5 });
  expect(lossRegression(earlier, e(3, NaN), 0.5)?.rise).toBe(Infinity);
  expect(lossRegression([], e(0, 9), 0.5)).toBeNull();
});
