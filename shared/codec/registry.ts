// The update codecs, one line each: a new codec is a file exporting a Codec (codec.ts) plus its line here.
// The key is the job's compression.kind and must equal its schema's kind literal (test/codec/registry.test.ts);
// the job spec's compression union (shared/protocol/messages.ts) is made from these entries.
import { Type, type Static } from '@sinclair/typebox';
import { fp32 } from './fp32.ts';
import { int8 } from './int8.ts';
import { topk } from './topk.ts';

export const codecs = {
  fp32,
  int8,
  topk,
} as const;

export type CodecName = keyof typeof codecs;
export const codecNames = Object.keys(codecs) as CodecName[];
/** A job's compression: the union of every codec's settings. */
export const CompressionSchema = Type.Union(codecNames.map((n) => codecs[n].schema));
export type Compression = { [K in CodecName]: Static<(typeof codecs)[K]['schema']> }[CodecName];
/** Header code → name, for decoding. */
export const codecByCode = new Map<number, CodecName>(codecNames.map((n) => [codecs[n].code, n]));
