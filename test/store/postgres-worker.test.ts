// A pool worker reads a checkpoint straight from the shared Postgres database (relays on other machines
// have no SQLite file to hand it): its ONNX export from the database equals the export of the same params given inline.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultJobSpec } from '../../server/default-job.ts';
import { openPool } from '../../server/pool/index.ts';
import { openPostgresStores, type PostgresStores } from '../../server/store/postgres/index.ts';
import { initParams } from '../../shared/models/config.ts';
import { postgresPerFile } from '../helpers/postgres.ts';

const pgdb = postgresPerFile();
const dir = mkdtempSync(join(tmpdir(), 'tabtrain-pgworker-'));
let stores: PostgresStores | undefined;
const pool = openPool();
afterAll(async () => {
  await pool.close();
  await stores?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('pool worker on Postgres', () => {
  it('exports a checkpoint it read from the database itself, byte for byte as from inline params', async () => {
    stores = await openPostgresStores(pgdb.url);
    const spec = defaultJobSpec();
    const params = initParams(spec.model, 7);
    await stores.relay.createJob('w', spec, 'running', { params, hash: 'h0' }, Date.now());
    const source = stores.relay.paramsSource('w', 0);
    expect(source).not.toBeInstanceOf(Float32Array);
    await pool.run({ kind: 'onnx', model: spec.model, params: source, file: join(dir, 'db.onnx') });
    await pool.run({ kind: 'onnx', model: spec.model, params, file: join(dir, 'inline.onnx') });
    const a = readFileSync(join(dir, 'db.onnx')), b = readFileSync(join(dir, 'inline.onnx'));
    expect(a.length).toBeGreaterThan(params.length * 4);
    expect(a.equals(b)).toBe(true);
    await expect(pool.run({ kind: 'onnx', model: spec.model, params: stores.relay.paramsSource('w', 9), file: join(dir, 'x.onnx') }))
      .rejects.toThrow(/no longer stored/);
  });
});
