// The MLP model kind: a multilayer perceptron on labelled rows (e.g. MNIST digits). runtime.ts holds its
// engine plan, CPU reference and ONNX export.
import { defineModelKind } from '../kind.ts';
import { MlpConfigSchema, MlpSubmission, mlpTensors, type MlpConfig } from './config.ts';

export const mlp = defineModelKind<MlpConfig, MlpSubmission>({
  schema: MlpConfigSchema,
  submission: MlpSubmission,
  dataFormat: 'labelled',
  wrongFormat: 'an mlp model trains on labelled arrays: use "labelled"',
  tensors: mlpTensors,
  tokensPerRow: () => 1,
  fromSubmission: (s, data) => ({
    kind: 'mlp', inputs: data.kind === 'labelled' ? data.inputs : 0, hidden: s.hidden, classes: data.kind === 'labelled' ? data.classes : 0,
  }),
  shapeFields: 'model.hidden',
  /** Forward + backward ≈ 3 × params per row, × batch × steps: the relay reruns a disputed MLP task on its own
   * CPU to break a spot check's tie (≈ 0.4–0.8 G/s on its event loop, one step at a time), so this caps that
   * at a few seconds. The MNIST job's task is 0.2 G, 10× under it. */
  taskLimit: { multiplyAdds: 2e9, what: 'an MLP (the relay reruns disputed MLP tasks on its CPU)' },
  labelledInputs: (c) => c.inputs,
  planBuffers(c, n, add) {
    const dims = [c.inputs, ...c.hidden, c.classes];
    const L = dims.length - 1;
    add('mlp.x', 'activations', n * c.inputs);
    add('mlp.labels', 'scratch', n);
    for (let l = 0; l < L; l++) add(`mlp.a${l + 1}`, l === L - 1 ? 'logits' : 'activations', n * dims[l + 1]);
    for (let l = 1; l < L; l++) add(`mlp.da${l}`, 'scratch', n * dims[l]);
    add('rowLoss', 'scratch', n);
    return n; // its logits are one chunk: its classes are few
  },
  describe: (c, o = {}) => `MLP ${[c.inputs, ...c.hidden, c.classes].join(o.long ? '-' : '–')}`,
  accuracyLabel: 'accuracy',
  relayEvaluates: true,
  relayReruns: true,
});
