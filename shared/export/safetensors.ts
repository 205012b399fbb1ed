// Export of a checkpoint as safetensors (https://huggingface.co/docs/safetensors), the format PyTorch,
// JAX and Hugging Face tools load without running code: an 8-byte little-endian header length N, N bytes
// of JSON ({name: {dtype, shape, data_offsets: [begin, end]}} plus an optional "__metadata__" map of
// strings), padded with spaces to a multiple of 8 so the data that follows is aligned, then the tensors'
// bytes, little-endian, back to back. Offsets count from the start of the data. Tensor names and shapes are
// the ONNX export's initializers (shared/models/config.ts paramLayout): "l0.w" [inputs, hidden], …
import { paramLayout, paramCount, type ModelConfig } from '../models/config.ts';

export type SafetensorsEntry = { dtype: 'F32'; shape: number[]; data_offsets: [number, number] };
export type SafetensorsHeader = Record<string, SafetensorsEntry> & { __metadata__?: Record<string, string> };

const ALIGN = 8;

export function exportSafetensors(model: ModelConfig, params: Float32Array, metadata: Record<string, string> = {}): Uint8Array {
  if (params.length !== paramCount(model)) throw new Error(`params have ${params.length} values, the model has ${paramCount(model)}`);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  for (const p of paramLayout(model)) header[p.name] = { dtype: 'F32', shape: p.shape, data_offsets: [p.offset * 4, (p.offset + p.size) * 4] };
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / ALIGN) * ALIGN;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20); // spaces: still valid JSON
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + params.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  // fp32 little-endian: the byte order of every platform the relay and tabs run on (checked below)
  const bytes = new Uint8Array(params.buffer, params.byteOffset, params.byteLength);
  if (new Uint8Array(new Float32Array([1]).buffer)[3] !== 0x3f) throw new Error('safetensors export assumes a little-endian platform');
  out.set(bytes, 8 + json.length);
  return out;
}

/** Reads a safetensors file's header and its tensors' fp32 values (what the tests check the export with). */
export function readSafetensors(bytes: Uint8Array): { header: SafetensorsHeader; headerBytes: number; tensors: Map<string, Float32Array> } {
  if (bytes.length < 8) throw new Error('safetensors file is shorter than its 8-byte header length');
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true));
  if (8 + n > bytes.length) throw new Error(`header length ${n} runs past the file's ${bytes.length} bytes`);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as SafetensorsHeader;
  const data = bytes.subarray(8 + n);
  const tensors = new Map<string, Float32Array>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const t = e as SafetensorsEntry;
    const [b, end] = t.data_offsets;
    if (t.dtype !== 'F32' || end > data.length || end - b !== 4 * t.shape.reduce((a, d) => a * d, 1)) throw new Error(`tensor ${name}: bad dtype, shape or offsets`);
    tensors.set(name, new Float32Array(data.slice(b, end).buffer));
  }
  return { header, headerBytes: n, tensors };
}
