// One flat parameter-sized vector (θ, its gradient, AdamW's m or v) held as the segments of
// param-segments.ts: one GPU buffer per segment, a tensor addressed as (buffer, local offset), and the
// whole vector written, read and copied segment by segment in flat order. With one segment (the usual
// case: the adapter's binding holds the whole model) this is exactly the old single flat buffer.
import type { Gpu } from './device.ts';
import type { Ref } from './kernels/matmul.ts';
import type { ParamSegments } from './param-segments.ts';

/** A tensor's rows [row0, row0 + rows) at `ref`. */
export type RowRange = { ref: Ref; row0: number; rows: number };

export class ParamBuffers {
  readonly buffers: GPUBuffer[];

  constructor(private gpu: Gpu, readonly place: ParamSegments, label: string) {
    const many = place.segments.length > 1;
    this.buffers = place.segments.map((s, i) => gpu.buffer(s.floats, many ? `${label}.${i}` : label));
  }

  get floats(): number {
    const last = this.place.segments[this.place.segments.length - 1];
    return last.start + last.floats;
  }

  /** A tensor held whole in one segment (every tensor but a split one). */
  ref(name: string): Ref {
    const pieces = this.rows(name);
    if (pieces.length !== 1) throw new Error(`tensor ${name} spans ${pieces.length} buffers; its kernel must take it in row ranges`);
    return pieces[0].ref;
  }

  /** A tensor's row ranges, one per segment it spans (one range when it is whole). */
  rows(name: string): RowRange[] {
    const t = this.place.tensors.get(name);
    if (!t) throw new Error(`no parameter named ${name} in the layout`);
    return t.pieces.map((p) => ({ ref: { buf: this.buffers[p.seg], off: p.off }, row0: p.row0, rows: p.rows }));
  }

  /** Writes the whole flat vector (queue writes, ordered before the next submit). */
  write(flat: Float32Array): void {
    if (flat.length !== this.floats) throw new Error(`expected ${this.floats} values, got ${flat.length}`);
    this.place.segments.forEach((s, i) => {
      this.gpu.device.queue.writeBuffer(this.buffers[i], 0, flat.buffer, flat.byteOffset + s.start * 4, s.floats * 4);
    });
  }

  zero(): void {
    this.place.segments.forEach((s, i) => this.gpu.device.queue.writeBuffer(this.buffers[i], 0, new Float32Array(s.floats)));
  }

  async read(): Promise<Float32Array> {
    const out = new Float32Array(this.floats);
    for (const [i, s] of this.place.segments.entries()) out.set(await this.gpu.read(this.buffers[i], 0, s.floats), s.start);
    return out;
  }

  /** Copies every segment into `to` (same placement) in one submit. */
  copyTo(to: ParamBuffers): void {
    const enc = this.gpu.device.createCommandEncoder();
    this.place.segments.forEach((s, i) => enc.copyBufferToBuffer(this.buffers[i], 0, to.buffers[i], 0, s.floats * 4));
    this.gpu.device.queue.submit([enc.finish()]);
  }
}
