// How a pool worker reads a checkpoint's params from the shared Postgres database (the params source
// RelayStore.paramsSource gives there: the database URL), so the relay's event loop never copies a big
// blob to it, as the SQLite store's worker reads its file (../sqlite-params.ts).
import pg from 'pg';
import { readChunked, type ChunkedParts } from './chunks.ts';

/** One small pool per worker and database; an idle connection that drops is replaced on next use. */
const pools = new Map<string, pg.Pool>();

export const isPostgresUrl = (s: string): boolean => /^postgres(ql)?:\/\//.test(s);

export async function readPostgresParams(url: string, jobId: string, version: number): Promise<Float32Array> {
  let pool = pools.get(url);
  if (!pool) {
    pool = new pg.Pool({ connectionString: url, max: 1, idleTimeoutMillis: 10_000, connectionTimeoutMillis: 5000, application_name: 'tabtrain-worker' });
    pool.on('error', () => undefined);
    pools.set(url, pool);
  }
  const r = (await pool.query<{ params: Buffer; chunked: string | null }>('SELECT params, external_parts AS chunked FROM versions WHERE job_id = $1 AND version = $2', [jobId, version])).rows[0];
  if (!r) throw new Error(`version ${version} of job ${jobId} is no longer stored`);
  // a large version's params are chunk rows (./chunks.ts)
  const size = r.chunked === null ? undefined : (JSON.parse(r.chunked) as ChunkedParts).params;
  if (size !== undefined) {
    const got = await readChunked(async (sql, args) => (await pool.query<{ bytes: Buffer }>(sql, args)).rows, jobId, version, 'params', size);
    if (!got) throw new Error(`version ${version} of job ${jobId} is no longer stored`);
    return new Float32Array(got.buffer, 0, size / 4);
  }
  const b = r.params;
  return b.byteOffset % 4 === 0 ? new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4) : new Float32Array(new Uint8Array(b).buffer);
}
