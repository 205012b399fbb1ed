// The one flat parameter layout every part agrees on (the WebGPU engine, the CPU reference, the relay's
// outer optimizer, the codec and the exports): a model kind lists its tensors in order, this places them.

export type Init = { kind: 'zeros' } | { kind: 'ones' } | { kind: 'normal'; std: number };
export type TensorSpec = { name: string; shape: number[]; init: Init };
export type ParamSpec = TensorSpec & { offset: number; size: number };

/** Offsets and sizes for tensors stored back to back in their listed order. */
export function placeTensors(specs: TensorSpec[]): ParamSpec[] {
  let offset = 0;
  return specs.map((s) => {
    const size = s.shape.reduce((a, b) => a * b, 1);
    const spec = { ...s, offset, size };
    offset += size;
    return spec;
  });
}
