// Unsigned LEB128 varints for the gaps between sorted sparse indices: with 1 % density most gaps are
// below 128 and take one byte instead of four.

export function varintSize(v: number): number {
  let n = 1;
  while (v >= 0x80) { v = Math.floor(v / 128); n++; }
  return n;
}

/** Writes v at out[pos]; returns the next position. */
export function writeVarint(out: Uint8Array, pos: number, v: number): number {
  while (v >= 0x80) { out[pos++] = (v & 0x7f) | 0x80; v = Math.floor(v / 128); }
  out[pos++] = v;
  return pos;
}
