// The MLP (ReLU hidden layers) as explicit forward and backward dispatches. Each layer is one fused
// matmul forward (bias + ReLU in the epilogue); backward is dW = aᵀ·d, db = Σ d and
// da = d·Wᵀ masked by the ReLU in the same matmul's epilogue.
import type { MlpConfig } from '../../models/config.ts';
import type { Dispatch, Gpu } from '../device.ts';
import { at, Epi, matmul } from '../kernels/matmul.ts';
import { colsum } from '../kernels/reduce.ts';
import { softmaxCe } from '../kernels/softmax-ce.ts';
import type { Plan, PlanBuffers } from './plan.ts';

export async function buildMlpPlan(gpu: Gpu, config: MlpConfig, n: number, b: PlanBuffers): Promise<Plan> {
  const dims = [config.inputs, ...config.hidden, config.classes];
  const L = dims.length - 1;
  const x = gpu.buffer(n * config.inputs, 'mlp.x');
  const labels = gpu.buffer(n, 'mlp.labels');
  const acts = [x];
  for (let l = 0; l < L; l++) acts.push(gpu.buffer(n * dims[l + 1], `mlp.a${l + 1}`));
  const forward: Dispatch[] = [];
  for (let l = 0; l < L; l++) {
    forward.push(await matmul(gpu, {
      a: at(acts[l]), b: b.theta.ref(`l${l}.w`), c: at(acts[l + 1]), M: n, N: dims[l + 1], K: dims[l],
      bias: b.theta.ref(`l${l}.b`), epi: l < L - 1 ? Epi.relu : Epi.none,
    }, `mlp.l${l}`));
  }
  // Gradients w.r.t. each hidden activation (the last one is dlogits, in the logits buffer).
  const dacts: GPUBuffer[] = [];
  for (let l = 1; l < L; l++) dacts[l] = gpu.buffer(n * dims[l], `mlp.da${l}`);
  dacts[L] = acts[L];
  const backward: Dispatch[] = [];
  for (let l = L - 1; l >= 0; l--) {
    const d = dacts[l + 1];
    backward.push(await matmul(gpu, {
      a: at(acts[l]), b: at(d), c: b.grad.ref(`l${l}.w`), M: dims[l], N: dims[l + 1], K: n, transA: true,
    }, `mlp.l${l}.dw`));
    backward.push(await colsum(gpu, at(d), n, dims[l + 1], b.grad.ref(`l${l}.b`), `mlp.l${l}.db`));
    if (l > 0) {
      backward.push(await matmul(gpu, {
        a: at(d), b: b.theta.ref(`l${l}.w`), c: at(dacts[l]), M: n, N: dims[l], K: dims[l + 1], transB: true,
        epi: Epi.reluGrad, aux: at(acts[l]),
      }, `mlp.l${l}.da`));
    }
  }
  const rowLoss = gpu.buffer(n, 'rowLoss');
  const ce = await softmaxCe(gpu, acts[L], at(labels), rowLoss, n, config.classes);
  return {
    rows: n,
    classes: config.classes,
    logits: acts[L],
    rowLoss,
    forward,
    chunks: [{ start: 0, rows: n, logits: [], loss: [ce] }],
    backward,
    write(batch) {
      if (batch.kind !== 'labelled') throw new Error(`the mlp needs a labelled batch (x, y), got kind=${batch.kind}`);
      if (batch.x.length !== n * config.inputs) throw new Error(`batch.x has ${batch.x.length} values; expected n·inputs = ${n}·${config.inputs}`);
      if (batch.y.length !== n) throw new Error(`batch.y has ${batch.y.length} labels; expected n = ${n}`);
      for (let i = 0; i < n; i++) {
        const c = batch.y[i];
        if (!(c >= 0 && c < config.classes)) throw new Error(`batch.y[${i}] = ${c} is not a class id in [0, ${config.classes})`);
      }
      const q = gpu.device.queue;
      q.writeBuffer(x, 0, batch.x.buffer, batch.x.byteOffset, batch.x.byteLength);
      q.writeBuffer(labels, 0, batch.y.buffer, batch.y.byteOffset, batch.y.byteLength);
    },
  };
}
