// fp32: header, then length × f32 (16 + 4n bytes). x̂ = x exactly; no residual.
import { Type } from '@sinclair/typebox';
import { defineCodec } from './codec.ts';
import { CodecError, expectSize, HEADER, readF32s, updateNorm, writeF32s, writeHeader, type FrameHeader, type Update } from './frame.ts';

export const fp32 = defineCodec({
  code: 0,
  schema: Type.Object({ kind: Type.Literal('fp32') }),
  check() {},
  finiteOnly: false,
  encode(x, _c, residual) {
    if (residual) residual.fill(0);
    const out = new Uint8Array(HEADER + 4 * x.length);
    writeF32s(out, writeHeader(out, 0, 32, x.length, 0), HEADER, x);
    return out;
  },
  decode: (bytes, dv, h) => decodeFp32(bytes, dv, h),
  norm(bytes, dv, h) {
    return updateNorm(decodeFp32(bytes, dv, h));
  },
  byteBound: (length) => HEADER + 4 * length,
  density: () => 1,
  replicaWithoutResidual: false,
});

function decodeFp32(bytes: Uint8Array, dv: DataView, h: FrameHeader): Update {
  if (h.bits !== 32) throw new CodecError(`fp32 update declares ${h.bits} bits; expected 32`);
  if (h.param !== 0) throw new CodecError('corrupt fp32 update header: param field must be 0');
  expectSize(bytes, HEADER + 4 * h.length, 'fp32');
  const values = readF32s(bytes, dv, HEADER, h.length);
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) throw new CodecError(`update value ${i} is ${values[i]}; values must be finite`);
  }
  return { kind: 'dense', values };
}
