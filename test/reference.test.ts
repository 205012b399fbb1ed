import { describe, expect, it } from 'vitest';
import { initParams, paramCount, type MlpConfig } from '../shared/models/config.ts';
import { mlpLossAndGrad } from '../shared/reference/mlp.ts';
import { rng } from '../shared/util/rng.ts';

describe('CPU reference MLP', () => {
  it('backward matches central finite differences', () => {
    const config: MlpConfig = { kind: 'mlp', inputs: 5, hidden: [7, 4], classes: 3 };
    const params = initParams(config, 1);
    const r = rng(2);
    const n = 6;
    const x = Float32Array.from({ length: n * 5 }, () => r.normal());
    const y = Array.from({ length: n }, () => r.int(3));
    const { grad } = mlpLossAndGrad(config, params, { x, y, n });
    const h = 1e-2;
    for (let i = 0; i < paramCount(config); i += 3) {
      const keep = params[i];
      params[i] = keep + h; const up = mlpLossAndGrad(config, params, { x, y, n }).loss;
      params[i] = keep - h; const down = mlpLossAndGrad(config, params, { x, y, n }).loss;
      params[i] = keep;
      expect(grad[i]).toBeCloseTo((up - down) / (2 * h), 3);
    }
  });
});
