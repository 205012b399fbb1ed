// Shards on the wire: HTTP Content-Encoding, brotli or gzip as the volunteer accepts (fetch decodes
// either before the volunteer sees a byte, so shard hashes, peers' pieces and spot checks are unchanged).
// MNIST shards shrink about 5.6× with brotli at quality 11 and 4.8× with gzip. A shard never changes, so
// each is compressed once, in the background (zlib's thread pool), and kept while its dataset is.
import { brotliCompress, constants, gzip } from 'node:zlib';
import { promisify } from 'node:util';

export type ShardEncoding = 'br' | 'gzip' | 'identity';

const brotli = promisify(brotliCompress), gz = promisify(gzip);
const cache = new WeakMap<Uint8Array, Map<ShardEncoding, Promise<Buffer>>>();

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

/** The shard's bytes in `encoding`, compressed on first use. */
export function encodedShard(bytes: Uint8Array, encoding: ShardEncoding): Promise<Buffer> {
  const raw = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (encoding === 'identity') return Promise.resolve(raw);
  let byEncoding = cache.get(bytes);
  if (!byEncoding) cache.set(bytes, (byEncoding = new Map()));
  let p = byEncoding.get(encoding);
  if (!p) {
    p = encoding === 'br'
      ? brotli(raw, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_LGWIN]: 24, [constants.BROTLI_PARAM_SIZE_HINT]: raw.byteLength } })
      : gz(raw, { level: 9 });
    // a failure is not kept: the next request tries again
    p.catch(() => byEncoding.delete(encoding));
    byEncoding.set(encoding, p);
  }
  return p;
}
