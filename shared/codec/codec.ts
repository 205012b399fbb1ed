// What one update codec is: its header code, the job settings it takes (a TypeBox object whose `kind` is
// its registry name) and its encode, decode, norm and size functions. registry.ts lists them; index.ts
// dispatches on a frame's header code and a job's compression.kind through it.
import type { Static, TObject } from '@sinclair/typebox';
import type { FrameHeader, Update } from './frame.ts';

export interface Codec<S extends TObject = TObject> {
  /** Byte 5 of the frame header; never reused once published (old frames must keep decoding). */
  readonly code: number;
  /** The settings a job gives it, e.g. { kind: 'int8', block: 256 }; the spec's compression union is made of these. */
  readonly schema: S;
  /** The same checks as the schema, with a CodecError naming the field (encodeUpdate's callers bypass the schema). */
  check(c: Static<S>): void;
  /** Whether it refuses non-finite input (fp32 carries values verbatim, so decoding is what refuses them). */
  readonly finiteOnly: boolean;
  /** Encodes x (Δ plus the residual, already added); with `residual`, stores x − x̂ into it. */
  encode(x: Float32Array, c: Static<S>, residual?: Float32Array): Uint8Array;
  /** Decodes and fully checks a frame whose header names this codec. */
  /** `into` (h.length values, the caller's to overwrite): a dense codec may write the values there rather
   * than into a new array (int8 does); its contents are undefined after a CodecError. */
  decode(bytes: Uint8Array, dv: DataView, h: FrameHeader, into?: Float32Array): Update;
  /** ‖x̂‖₂ from the bytes, after the same checks as decode. */
  norm(bytes: Uint8Array, dv: DataView, h: FrameHeader): number;
  /** Frame bytes for `length` values: exact, or an upper bound where the size depends on the data. */
  byteBound(length: number, c: Static<S>): number;
  /** Frame bytes to expect where byteBound is only a bound (estimates, never caps); absent: byteBound. */
  expectedBytes?(length: number, c: Static<S>): number;
  /** The share of coordinates a frame carries (1 for dense codecs): error feedback concentrates about 1/f
   * tasks' worth of Δ on them, so the relay's prior norm bound grows by 1/√f. */
  density(c: Static<S>): number;
  /** Whether a spot-checked task is sent without error feedback: only where the residual is most of Δ, so
   * two honest copies would never match (server/scheduler). */
  readonly replicaWithoutResidual: boolean;
}

/** Types a codec's functions from its schema (so `c.block` is a number in int8's encode). */
export const defineCodec = <S extends TObject>(codec: Codec<S>): Codec<S> => codec;
