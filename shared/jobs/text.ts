// Text tokenisation for GPT jobs: "char" gives each distinct character of the corpus one id (ids in
// code-point order, so the vocabulary is a plain string a page can carry); "byte" uses UTF-8 bytes (vocab
// 256, any text); "bpe" is GPT-2's byte-level BPE (vocab 50,257), whose merge table ships inside the npm
// package gpt-tokenizer (nothing is downloaded at run time). The same functions encode the corpus on the
// relay and prompts in "try the model".
import { decode as bpeDecode, encode as bpeEncode } from 'gpt-tokenizer/encoding/r50k_base';
import { LIMITS, SpecError, tokenizerVocab } from './spec.ts';

export type Tokenizer = { kind: 'char'; vocabulary: string } | { kind: 'byte' } | { kind: 'bpe' };

/** GPT-2's vocabulary: 50,000 merges, 256 byte tokens and <|endoftext|>. */
export const bpeVocab = tokenizerVocab.bpe;

// A corpus or prompt containing the text "<|endoftext|>" is encoded as that plain text, not the special id.
const plainText = { disallowedSpecial: new Set<string>() };

export function vocabSize(t: Tokenizer): number {
  if (t.kind === 'bpe') return bpeVocab;
  return t.kind === 'byte' ? tokenizerVocab.byte : Array.from(t.vocabulary).length;
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
  if (t.kind === 'bpe') return Int32Array.from(bpeEncode(text, plainText));
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
  if (t.kind === 'bpe') {
    const list = Array.from(ids as ArrayLike<number>);
    const known = (id: number) => Number.isInteger(id) && id >= 0 && id < bpeVocab;
    if (list.every(known)) return bpeDecode(list);
    // An id outside the vocabulary (a model sampling garbage) decodes as U+FFFD, as the char tokenizer does.
    return list.map((id) => (known(id) ? bpeDecode([id]) : '\uFFFD')).join('');
  }
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
