// "Try the model": a checkpoint exported to ONNX (server: shared/export/onnx.ts) run in onnxruntime-web's
// wasm backend: classify an input with an MLP, or sample a continuation of a prompt with a GPT.
import * as ort from 'onnxruntime-web/wasm';
import { rng } from '../../shared/util/rng.ts';
import { bpeVocab, decodeTokens, encodeText, type Tokenizer } from '../../shared/jobs/text.ts';

// One thread (pages are not cross-origin isolated); the runtime's files come from the relay.
ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmPaths = '/api/ops/ort/';

export async function loadModel(url: string): Promise<ort.InferenceSession> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`could not download the ONNX checkpoint (${res.status})`);
  return ort.InferenceSession.create(new Uint8Array(await res.arrayBuffer()));
}

function softmax(logits: ArrayLike<number>, temperature = 1): Float64Array {
  const t = Math.max(temperature, 1e-6);
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i] / t);
  const p = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) { p[i] = Math.exp(logits[i] / t - max); sum += p[i]; }
  for (let i = 0; i < p.length; i++) p[i] /= sum;
  return p;
}

/** Class probabilities of one input row. */
export async function classify(session: ort.InferenceSession, x: Float32Array): Promise<Float64Array> {
  const out = await session.run({ x: new ort.Tensor('float32', x, [1, x.length]) });
  return softmax(out.logits.data as Float32Array);
}

/**
 * Continues `prompt` by `length` tokens. The exported graph has a fixed sequence length (the context);
 * a shorter window is padded at the end, which causal attention ignores for earlier positions.
 */
export async function sampleText(session: ort.InferenceSession, tokenizer: Tokenizer, seqLen: number, prompt: string, length: number, temperature: number, seed = 1): Promise<string> {
  // Prompts use the job's own tokenizer (char, byte or GPT-2 BPE); an empty one starts from
  // <|endoftext|> for BPE (how GPT-2 documents begin), id 0 otherwise.
  const ids = Array.from(encodeText(tokenizer, prompt));
  if (ids.length === 0) ids.push(tokenizer.kind === 'bpe' ? bpeVocab - 1 : 0);
  const r = rng(seed);
  const start = ids.length;
  for (let n = 0; n < length; n++) {
    const window = ids.slice(-seqLen);
    const feed = new BigInt64Array(seqLen);
    window.forEach((t, i) => { feed[i] = BigInt(t); });
    const out = await session.run({ tokens: new ort.Tensor('int64', feed, [1, seqLen]) });
    const logits = out.logits.data as Float32Array;
    const vocab = logits.length / seqLen;
    const row = logits.subarray((window.length - 1) * vocab, window.length * vocab);
    let next = 0;
    if (temperature <= 0) { for (let c = 1; c < vocab; c++) if (row[c] > row[next]) next = c; }
    else {
      const p = softmax(row, temperature);
      let u = r.next();
      for (next = 0; next < vocab - 1 && u >= p[next]; next++) u -= p[next];
    }
    ids.push(next);
  }
  return decodeTokens(tokenizer, ids.slice(start));
}

/** A 280×280 drawing as 28×28 values in [0, 1] (ink = 1), as MNIST rows are. */
export function canvasToDigit(canvas: HTMLCanvasElement): Float32Array {
  const ctx = canvas.getContext('2d')!;
  const { data, width, height } = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const out = new Float32Array(784);
  const bw = width / 28, bh = height / 28;
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      let s = 0, n = 0;
      for (let py = Math.floor(y * bh); py < Math.floor((y + 1) * bh); py++) {
        for (let px = Math.floor(x * bw); px < Math.floor((x + 1) * bw); px++) { s += data[(py * width + px) * 4]; n++; }
      }
      out[y * 28 + x] = n ? s / n / 255 : 0;
    }
  }
  return out;
}
