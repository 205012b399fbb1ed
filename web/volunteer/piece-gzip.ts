// Pieces on a data channel between tabs go gzipped when that pays (./peers.ts), as the relay sends shards
// and deltas compressed; the browser's own CompressionStream, so no library. Inflating is capped at the
// piece's size, which the relay gave: a peer cannot make a tab hold more than that.

/** The piece gzipped, or undefined when that saves under an eighth (fp32 params barely shrink). */
export async function gzipped(b: Uint8Array): Promise<Uint8Array | undefined> {
  const z = new Uint8Array(await new Response(new Blob([b as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer());
  return z.byteLength < b.byteLength * 7 / 8 ? z : undefined;
}

/** Gunzipped bytes, or undefined when they are not gzip or come to more than `max` (a peer cannot make
 * this tab inflate more than the piece's size). */
export async function gunzipped(z: Uint8Array, max: number): Promise<Uint8Array | undefined> {
  try {
    const reader = new Blob([z as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream('gzip')).getReader();
    const out = new Uint8Array(max);
    let at = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return at === max ? out : undefined;
      if (at + value.byteLength > max) { await reader.cancel(); return undefined; }
      out.set(value, at);
      at += value.byteLength;
    }
  } catch {
    return undefined;
  }
}
