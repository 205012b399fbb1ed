// Shards and version deltas on the wire: HTTP Content-Encoding, brotli or gzip as the volunteer accepts
// (fetch decodes either before the volunteer sees a byte, so hashes, peers' pieces and spot checks are
// unchanged). MNIST shards shrink about 5.0× with brotli at quality 5 (4.7× with gzip); deltas, already
// quantised, by what entropy coding finds in their codes. Neither changes once made, so each is compressed
// once per encoding, in zlib's thread pool: shards kept while their dataset is, deltas (read afresh from the
// store on each request) by content hash, the most recent few. Quality 11 would make shards another 12 %
// smaller but costs seconds of CPU per MNIST shard: on a loaded relay that delayed first downloads and
// slowed training in the same process until short leases ran out.
import { brotliCompress, constants, gzip } from 'node:zlib';
import { promisify } from 'node:util';

export type ShardEncoding = 'br' | 'gzip' | 'identity';

const brotli = promisify(brotliCompress), gz = promisify(gzip);
const cache = new WeakMap<Uint8Array, Map<ShardEncoding, Promise<Buffer>>>();
const byHash = new Map<string, Map<ShardEncoding, Promise<Buffer>>>();
/** Deltas kept compressed: those of the versions volunteers are fetching now. */
const DELTAS_KEPT = 32;

/** The best encoding an Accept-Encoding header allows: br, then gzip, else none (q=0 refuses a coding). */
export function pickEncoding(accept: string | undefined): ShardEncoding {
  const ok = new Set<string>();
  for (const part of (accept ?? '').toLowerCase().split(',')) {
    const [name, ...params] = part.trim().split(';');
    const q = params.map((p) => /^\s*q=([0-9.]+)\s*$/.exec(p)?.[1]).find((v) => v !== undefined);
    if (name && (q === undefined || Number(q) > 0)) ok.add(name.trim());
  }
  return ok.has('br') ? 'br' : ok.has('gzip') ? 'gzip' : 'identity';
}

const compress = (raw: Buffer, encoding: 'br' | 'gzip'): Promise<Buffer> => encoding === 'br'
  ? brotli(raw, { params: { [constants.BROTLI_PARAM_QUALITY]: 5, [constants.BROTLI_PARAM_LGWIN]: 24, [constants.BROTLI_PARAM_SIZE_HINT]: raw.byteLength } })
  : gz(raw, { level: 6 });

/** `bytes` in `encoding`, compressed on first use. `hash`: the
 * bytes' content hash, for bytes that arrive in a fresh array each time (deltas); shards are kept by array. */
export function encodedBytes(bytes: Uint8Array, encoding: ShardEncoding, hash?: string): Promise<Buffer> {
  const raw = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (encoding === 'identity') return Promise.resolve(raw);
  let byEncoding = hash === undefined ? cache.get(bytes) : byHash.get(hash);
  if (!byEncoding) {
    byEncoding = new Map();
    if (hash === undefined) cache.set(bytes, byEncoding);
    else {
      byHash.set(hash, byEncoding);
      for (const k of byHash.keys()) if (byHash.size > DELTAS_KEPT) byHash.delete(k);
    }
  }
  const entries = byEncoding;
  let p = entries.get(encoding);
  if (!p) {
    p = compress(raw, encoding);
    // a failure is not kept: the next request tries again
    p.catch(() => entries.delete(encoding));
    entries.set(encoding, p);
  }
  return p;
}
