// Where the flat parameter vector (and its gradient and AdamW state, laid out the same) lives on the
// device when it is larger than one storage buffer binding: consecutive segments of at most `cap`
// floats, each its own GPU buffer, split only between tensors, so a kernel binds the segment holding
// its tensor at a local offset. Tensors of one module (the part of the name before the last '.', e.g.
// h0.ln1 or h0.mlp) stay in one segment, since one kernel reads a layer norm's γ and β through one
// binding. A tensor that alone exceeds a segment (GPT-2's 50,257 × 768 token embedding and untied head
// are 154 MB each, over WebGPU's default 128 MiB binding) is split into row ranges, where the model's
// kernels take it in pieces (its kind lists which: ModelKind.splitTensors). Pure: the memory plan, the
// relay and the submit page compute the same placement the trainer allocates.
import type { ParamSpec } from '../models/layout.ts';

/** A run of whole rows of one tensor inside one segment: `off` is the local element offset there. */
export type Piece = { seg: number; off: number; row0: number; rows: number };
export type TensorPlace = { name: string; rowFloats: number; rows: number; pieces: Piece[] };
export type Segment = { start: number; floats: number };
export type ParamSegments = { segments: Segment[]; tensors: Map<string, TensorPlace> };

/** The module a tensor belongs to: tensors of one module share a segment (and a kernel binding). */
export const moduleOf = (name: string): string => (name.includes('.') ? name.slice(0, name.lastIndexOf('.')) : name);

function modules(layout: ParamSpec[]): ParamSpec[][] {
  const out: ParamSpec[][] = [];
  for (const p of layout) {
    const last = out[out.length - 1];
    if (last && moduleOf(last[0].name) === moduleOf(p.name)) last.push(p);
    else out.push([p]);
  }
  return out;
}

const rowFloatsOf = (p: ParamSpec) => (p.shape.length > 1 ? p.size / p.shape[0] : p.size);

/**
 * The largest run of parameters that must sit in one binding, whatever the limit: a module that cannot
 * be split (its whole size), or one row of a splittable tensor. An adapter whose binding limit is below
 * this cannot train the model.
 */
export function largestUnit(layout: ParamSpec[], splittable: ReadonlySet<string>): { name: string; floats: number } {
  let best = { name: '', floats: 0 };
  for (const m of modules(layout)) {
    const one = m.length === 1 && splittable.has(m[0].name);
    const floats = one ? rowFloatsOf(m[0]) : m.reduce((s, p) => s + p.size, 0);
    if (floats > best.floats) best = { name: moduleOf(m[0].name), floats };
  }
  return best;
}

/** Places `layout` in segments of at most `cap` floats (a multiple of 4, so each stays 16-byte sized). */
export function placeSegments(layout: ParamSpec[], cap: number, splittable: ReadonlySet<string>): ParamSegments {
  if (!Number.isInteger(cap) || cap < 4) throw new Error(`segment size must be at least 4 floats, got ${cap}`);
  const segments: Segment[] = [{ start: 0, floats: 0 }];
  const tensors = new Map<string, TensorPlace>();
  const cur = () => segments[segments.length - 1];
  const open = () => { if (cur().floats > 0) segments.push({ start: cur().start + cur().floats, floats: 0 }); };
  for (const m of modules(layout)) {
    const size = m.reduce((s, p) => s + p.size, 0);
    if (size <= cap) {
      if (cur().floats + size > cap) open();
      for (const p of m) {
        tensors.set(p.name, { name: p.name, rowFloats: rowFloatsOf(p), rows: p.size / rowFloatsOf(p), pieces: [{ seg: segments.length - 1, off: cur().floats, row0: 0, rows: p.size / rowFloatsOf(p) }] });
        cur().floats += p.size;
      }
      continue;
    }
    const p = m[0], row = rowFloatsOf(p);
    if (m.length > 1 || !splittable.has(p.name)) {
      throw new Error(`parameters ${moduleOf(p.name)} need one binding of ${size * 4} bytes; the device allows ${cap * 4} per binding`);
    }
    if (row > cap) throw new Error(`one row of ${p.name} is ${row * 4} bytes; the device allows ${cap * 4} per binding`);
    const place: TensorPlace = { name: p.name, rowFloats: row, rows: p.size / row, pieces: [] };
    for (let r = 0; r < place.rows;) {
      let fit = Math.floor((cap - cur().floats) / row);
      if (fit === 0) { open(); fit = Math.floor(cap / row); }
      const rows = Math.min(fit, place.rows - r);
      place.pieces.push({ seg: segments.length - 1, off: cur().floats, row0: r, rows });
      cur().floats += rows * row;
      r += rows;
    }
    tensors.set(p.name, place);
  }
  return { segments, tensors };
}

/** Floats per segment for a binding limit of `bytes` (whole 16-byte units, as Gpu.buffer rounds). */
export const segmentFloats = (bytes: number): number => Math.floor(bytes / 16) * 4;
