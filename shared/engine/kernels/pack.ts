// Packs a kernel's uniform struct: fields in WGSL declaration order, each 4 bytes (u32 or f32),
// padded to 16 bytes. Each kernel module lists its fields once, beside its WGSL struct.
export type Field = ['u32' | 'f32', number];

export function packStruct(fields: Field[]): ArrayBuffer {
  const bytes = Math.max(16, Math.ceil((fields.length * 4) / 16) * 16);
  const dv = new DataView(new ArrayBuffer(bytes));
  fields.forEach(([kind, v], i) => {
    if (kind === 'u32') {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`uniform field ${i} must be a u32, got ${v}`);
      dv.setUint32(i * 4, v, true);
    } else dv.setFloat32(i * 4, v, true);
  });
  return dv.buffer;
}

/** Workgroup size of every 1-D kernel. */
export const wg = 64;
export const groups1d = (threads: number): number => Math.ceil(threads / wg);
