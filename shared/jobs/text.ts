// Text tokenisation for GPT jobs: "char" gives each distinct character of the corpus one id (ids in
// code-point order, so the vocabulary is a plain string a page can carry); "byte" uses UTF-8 bytes (vocab
// 256, any text). The same functions encode the corpus on the relay and prompts in "try the model".
import { LIMITS, SpecError } from './spec.ts';

export type Tokenizer = { kind: 'char'; vocabulary: string } | { kind: 'byte' };

export function vocabSize(t: Tokenizer): number {
  return t.kind === 'byte' ? 256 : Array.from(t.vocabulary).length;
}

/** The char vocabulary of a corpus: its distinct code points, sorted. */
export function charVocabulary(text: string): string {
  // for-of walks code points without an array of every character of the corpus (16 MiB of text)
  const seen = new Set<string>();
  for (const c of text) seen.add(c);
  const chars = [...seen].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
  if (chars.length > LIMITS.charVocab) {
    throw new SpecError('dataset.tokenizer', `the corpus has ${chars.length} distinct characters, more than the ${LIMITS.charVocab} a char vocabulary allows; use "byte"`);
  }
  return chars.join('');
}

export function encodeText(t: Tokenizer, text: string): Int32Array {
  if (t.kind === 'byte') return Int32Array.from(new TextEncoder().encode(text));
  const ids = new Map(Array.from(t.vocabulary).map((c, i) => [c, i]));
  // at most one id per UTF-16 unit; filled by walking code points, no per-character array
  const out = new Int32Array(text.length);
  let n = 0;
  for (const c of text) {
    const id = ids.get(c);
    if (id === undefined) throw new SpecError('prompt', `character ${JSON.stringify(c)} is not in the job's vocabulary`);
    out[n++] = id;
  }
  return out.slice(0, n);
}

export function decodeTokens(t: Tokenizer, ids: ArrayLike<number>): string {
  if (t.kind === 'byte') return new TextDecoder().decode(Uint8Array.from(ids as ArrayLike<number>));
  const chars = Array.from(t.vocabulary);
  let s = '';
  for (let i = 0; i < ids.length; i++) s += chars[ids[i]] ?? '\uFFFD';
  return s;
}

/** Decodes an upload as strict UTF-8, naming the byte offset of the first invalid sequence. */
export function decodeUtf8(bytes: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    // Find the offset for the message (slow path, only on failure).
    let lo = 0, hi = bytes.length;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      try { new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, mid)); lo = mid; } catch { hi = mid; }
    }
    throw new SpecError('dataset', `the text corpus is not valid UTF-8 near byte ${lo}; save it as UTF-8`);
  }
}
