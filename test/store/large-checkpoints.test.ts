// Large checkpoints on both stores, at a lowered size threshold so small arrays take the large path:
// params, momentum, residual and delta split off their row (files beside the SQLite file, chunk rows on
// Postgres) read back exactly; a params download streams without momentum; rollback and retention take
// the split parts with their rows; retention by bytes keeps the staleness window and the rollback target;
// a crash between writing a file and committing its row leaves an orphan that the next open removes; a
// round's parts staged by its worker become the version's files only through the commit that wins.
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultJobSpec } from '../../server/default-job.ts';
import { openSqliteStores } from '../../server/store/async.ts';
import { checkpointPath, stageParts, stagedPath, type FileParts } from '../../server/store/checkpoint-files.ts';
import { openPostgresStores } from '../../server/store/postgres/index.ts';
import { readPostgresParams } from '../../server/store/postgres/params.ts';
import { readParams } from '../../server/store/sqlite-params.ts';
import { roundInputs } from '../../server/store/round-inputs.ts';
import type { NextVersion, ParamsRead, Stores } from '../../server/store/types.ts';
import { postgresPerFile } from '../helpers/postgres.ts';

const pgdb = postgresPerFile();
const spec = defaultJobSpec();
/** Parts over 1,000 bytes split off their row; on Postgres in chunks of 1,000 bytes (not a multiple of a float's 4 bytes) */
const THRESHOLD = 1000;
const N = 2000; // 8,000 bytes a part: 8 chunks

const floats = (seed: number, n = N) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 1000 + i));
const bytesOf = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const next = (version: number): NextVersion => ({
  version, params: floats(version), momentum: floats(version + 0.5), hash: `h${version}`,
  delta: { bytes: bytesOf(floats(version + 0.25, 700)), sha256: `d${version}` }, residual: floats(version + 0.75),
});
async function readAll(p: ParamsRead): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const c of p.stream()) chunks.push(c as Buffer);
  return new Uint8Array(Buffer.concat(chunks));
}

/** `split()`: the files (SQLite) or chunk rows (Postgres) holding split-off parts now */
type Opened = { stores: Stores; split(): Promise<number>; worker(version: number): Promise<Float32Array>; db: string; close(): Promise<void> };

const kinds: [string, () => Promise<Opened>][] = [
  ['SQLite', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tt-large-'));
    const file = join(dir, 'tabtrain.sqlite');
    const stores: Stores = openSqliteStores(file, { checkpointWorker: false, checkpointFileBytes: THRESHOLD });
    return {
      stores,
      split: async () => (existsSync(join(dir, 'checkpoints', 'j')) ? readdirSync(join(dir, 'checkpoints', 'j')).length : 0),
      worker: async (version) => readParams({ db: file, jobId: 'j', version }), db: file,
      async close() { await stores.close(); rmSync(dir, { recursive: true, force: true }); },
    };
  }],
  ['Postgres', async () => {
    const c = new pg.Client({ connectionString: pgdb.url });
    await c.connect();
    // a fresh schema per test: empty every table this file's earlier tests filled
    await c.query(`DO $$ DECLARE t text; BEGIN FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename != 'schema_migrations'
      LOOP EXECUTE 'TRUNCATE ' || quote_ident(t) || ' CASCADE'; END LOOP; END $$`).catch(() => undefined);
    await c.end();
    const stores: Stores = await openPostgresStores(pgdb.url, { checkpointChunkBytes: THRESHOLD });
    return {
      stores,
      async split() {
        const c = new pg.Client({ connectionString: pgdb.url });
        await c.connect();
        try { return Number((await c.query('SELECT COUNT(*) AS n FROM version_chunks')).rows[0].n); } finally { await c.end(); }
      },
      worker: (version) => readPostgresParams(pgdb.url, 'j', version), db: pgdb.url,
      async close() { await stores.close(); },
    };
  }],
];

describe.each(kinds)('large checkpoints: %s', (kind, open) => {
  let s: Opened | undefined;
  afterEach(async () => { await s?.close(); s = undefined; });

  it('splits every large part off its row and reads each back exactly, params alone streamed', async () => {
    s = await open();
    const r = s.stores.relay;
    await r.createJob('j', spec, 'running', { params: floats(0), hash: 'h0' }, 1);
    expect(await r.commitRound('j', next(1), [], 2)).toBe(true);
    const v = (await r.getVersion('j', 1))!;
    expect(v.params).toEqual(floats(1));
    expect(v.momentum).toEqual(floats(1.5));
    expect(v.residual).toEqual(floats(1.75));
    expect((await r.getParams('j', 1))!.params).toEqual(floats(1));
    expect(await r.getDelta('j', 1)).toEqual(bytesOf(floats(1.25, 700)));
    expect((await r.listDeltas('j', 0, 1)).map((d) => d.bytes)).toEqual([2800]);
    const p = (await r.paramsRead('j', 1))!;
    expect(p.hash).toBe('h1');
    expect(p.bytes).toBe(4 * N);
    expect(await readAll(p)).toEqual(bytesOf(floats(1)));
    // version 0: momentum all zeros, never written out
    expect((await r.getVersion('j', 0))!.momentum).toEqual(new Float32Array(N));
    // a pool worker finds the split params itself, and a round's worker the whole split checkpoint
    expect(await s.worker(1)).toEqual(floats(1));
    const inputs = roundInputs(s.db);
    try {
      const base = await inputs.checkpoint('j', 1);
      expect([base.params, base.momentum, base.residual]).toEqual([floats(1), floats(1.5), floats(1.75)]);
      // given arrays it no longer needs (a round's kept updates), it reads into them: same values
      const spare = [new Float32Array(N).fill(9), new Float32Array(N).fill(9), new Float32Array(7)];
      const given = [...spare];
      const again = await inputs.checkpoint('j', 1, spare);
      expect([again.params, again.momentum, again.residual]).toEqual([floats(1), floats(1.5), floats(1.75)]);
      if (kind === 'SQLite') {
        expect(again.params.buffer).toBe(given[0].buffer);
        expect(again.momentum.buffer).toBe(given[1].buffer);
        expect(spare).toEqual([given[2]]); // the odd-sized one is left; the residual got an array of its own
        // version 0's momentum (never written) comes zeroed, in a spare too
        const zero = [new Float32Array(N).fill(9), new Float32Array(N).fill(9)];
        const v0 = await inputs.checkpoint('j', 0, zero);
        expect(v0.momentum).toEqual(new Float32Array(N));
        expect(zero).toEqual([]);
      }
    } finally {
      inputs.close();
    }
    expect(await r.checkpointBytes('j')).toBe(4 * N + (4 * N * 3 + 2800));
    // one file a part, or 1,000-byte chunks: versions 0 (params) and 1 (params, momentum, residual, delta)
    expect(await s.split()).toBe(kind === 'SQLite' ? 5 : 8 + 3 * 8 + 3);
  });

  it('rollback and retention take the split parts with their rows', async () => {
    s = await open();
    const r = s.stores.relay;
    await r.createJob('j', spec, 'running', { params: floats(0), hash: 'h0' }, 1);
    for (let v = 1; v <= 4; v++) expect(await r.commitRound('j', next(v), [], v + 1)).toBe(true);
    await r.rollback('j', 3, 10);
    expect(await r.listVersions('j')).toEqual([0, 1, 2, 3]);
    expect(await r.commitRound('j', { ...next(4), params: floats(40), hash: 'h4b' }, [], 11)).toBe(true);
    // the new version 4 reads as itself, nothing of the rolled-back one
    expect((await r.getParams('j', 4))!.params).toEqual(floats(40));
    await r.pruneHistory('j', 2, 100);
    expect(await r.listVersions('j')).toEqual([0, 3, 4]);
    expect(await r.paramsRead('j', 1)).toBeUndefined();
    expect(await r.checkpointBytes('j')).toBe(4 * N + 2 * (4 * N * 3 + 2800));
    expect(await s.split()).toBe(kind === 'SQLite' ? 1 + 2 * 4 : 8 + 2 * (3 * 8 + 3));
  });

  it('retention by bytes drops the oldest, never the staleness window nor the rollback target', async () => {
    s = await open();
    const r = s.stores.relay;
    await r.createJob('j', spec, 'running', { params: floats(0), hash: 'h0' }, 1);
    for (let v = 1; v <= 8; v++) expect(await r.commitRound('j', next(v), [], v + 1)).toBe(true);
    // version 2 has the best held-out loss: the guardrail's rollback target
    for (let v = 1; v <= 8; v++) await r.putEval('j', { version: v, loss: v === 2 ? 0.1 : 1, accuracy: 0.5, at: v });
    const perVersion = 4 * N * 3 + 2800;
    // room for three full versions: 0 (params only) and 1 go first, then 3, 4, … up to the window from 6
    const dropped = await r.pruneBytes('j', 3 * perVersion, 6);
    expect(await r.listVersions('j')).toEqual([2, 6, 7, 8]);
    expect(dropped).toEqual({ checkpoints: 5, bytes: 4 * N + 4 * perVersion });
    // over budget with only protected versions left: it stops there
    expect(await r.pruneBytes('j', 1, 6)).toEqual({ checkpoints: 0, bytes: 0 });
    expect(await r.listVersions('j')).toEqual([2, 6, 7, 8]);
    expect((await r.getVersion('j', 2))!.momentum).toEqual(floats(2.5));
    expect(await r.checkpointBytes('j')).toBe(4 * perVersion);
  });
});

describe('large checkpoints: SQLite files', () => {
  it('a params download reads no momentum: with the momentum file gone, params still stream and getParams works', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tt-large-'));
    const file = join(dir, 'tabtrain.sqlite');
    const warnings: string[] = [];
    const stores = openSqliteStores(file, { checkpointWorker: false, checkpointFileBytes: THRESHOLD, warn: (_f, m) => warnings.push(m) });
    try {
      const r = stores.relay;
      await r.createJob('j', spec, 'running', { params: floats(0), hash: 'h0' }, 1);
      await r.commitRound('j', next(1), [], 2);
      const cp = join(dir, 'checkpoints');
      rmSync(checkpointPath(cp, 'j', 1, 'momentum'));
      expect(await readAll((await r.paramsRead('j', 1))!)).toEqual(bytesOf(floats(1)));
      expect((await r.getParams('j', 1))!.params).toEqual(floats(1));
      expect(warnings).toEqual([]);
      // reading the whole checkpoint does need momentum: a lost file reads as no version, with a warning
      expect(await r.getVersion('j', 1)).toBeUndefined();
      expect(warnings).toHaveLength(1);
    } finally {
      await stores.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('removes the files of dropped rows, and on open the orphans a crash left', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tt-large-'));
    const file = join(dir, 'tabtrain.sqlite');
    const cp = join(dir, 'checkpoints');
    let stores = openSqliteStores(file, { checkpointWorker: false, checkpointFileBytes: THRESHOLD });
    try {
      const r = stores.relay;
      await r.createJob('j', spec, 'running', { params: floats(0), hash: 'h0' }, 1);
      for (let v = 1; v <= 3; v++) await r.commitRound('j', next(v), [], v + 1);
      expect(readdirSync(join(cp, 'j')).sort()).toHaveLength(1 + 3 * 4);
      await r.rollback('j', 2, 5);
      expect(existsSync(checkpointPath(cp, 'j', 3, 'params'))).toBe(false);
      await r.pruneHistory('j', 1, 100);
      expect(readdirSync(join(cp, 'j')).sort()).toEqual(['v0.params', 'v2.delta', 'v2.momentum', 'v2.params', 'v2.residual']);
      // a rolled-back transaction keeps the files of the rows it had dropped: the rows are back
      await expect(stores.transaction(async (tx) => { await tx.relay.rollback('j', 0, 6); throw new Error('changed my mind'); })).rejects.toThrow('changed my mind');
      expect((await r.getVersion('j', 2))!.params).toEqual(floats(2));
      // a version dropped and made again in one transaction keeps its new files when that transaction commits
      await stores.transaction(async (tx) => {
        await tx.relay.rollback('j', 0, 7);
        await tx.relay.commitRound('j', next(1), [], 8);
        await tx.relay.commitRound('j', { ...next(2), params: floats(20), hash: 'h2b' }, [], 9);
      });
      expect((await r.getVersion('j', 2))!.params).toEqual(floats(20));
      expect((await r.getVersion('j', 2))!.momentum).toEqual(floats(2.5));
      // a crash after writing a file, before its row committed: an orphan, and a stray job directory
      writeFileSync(checkpointPath(cp, 'j', 9, 'params'), 'x');
      writeFileSync(join(cp, 'j', 'v2.params.tmp'), 'x');
      await stores.close();
      stores = openSqliteStores(file, { checkpointWorker: false, checkpointFileBytes: THRESHOLD });
      expect(readdirSync(join(cp, 'j')).sort()).toEqual(['v0.params', ...['delta', 'momentum', 'params', 'residual'].flatMap((p) => [`v1.${p}`, `v2.${p}`]).sort()]);
      expect((await stores.relay.getVersion('j', 2))!.residual).toEqual(floats(2.75));
    } finally {
      await stores.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('a round\'s staged parts become the version\'s files only through the winning commit; a loser\'s never overwrite them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tt-large-'));
    const file = join(dir, 'tabtrain.sqlite');
    const cp = join(dir, 'checkpoints');
    let stores = openSqliteStores(file, { checkpointWorker: false, checkpointFileBytes: THRESHOLD, durability: 'full' });
    try {
      const r = stores.relay;
      await r.createJob('j', spec, 'running', { params: floats(0), hash: 'h0' }, 1);
      const out = r.roundOutput()!;
      expect(out).toEqual({ dir: cp, sync: true, threshold: THRESHOLD });
      // two closers of round 1 stage their own parts (as their pool workers do), each under its attempt's names
      const stage = (attempt: string, n: NextVersion) => stageParts({ ...out, attempt }, 'j', 1, {
        params: bytesOf(n.params), momentum: bytesOf(n.momentum), residual: bytesOf(n.residual!), delta: n.delta!.bytes,
      });
      const a = next(1), b = { ...next(1), params: floats(11), hash: 'h1b' };
      const stagedA = await stage('aaaa', a), stagedB = await stage('bbbb', b);
      expect(stagedA).toEqual({ params: 4 * N, momentum: 4 * N, residual: 4 * N, delta: 4 * 700 });
      // nothing is a version's file yet
      expect(existsSync(checkpointPath(cp, 'j', 1, 'params'))).toBe(false);
      const none = new Float32Array(0);
      const staged = (n: NextVersion, attempt: string, parts: FileParts): NextVersion =>
        ({ ...n, params: none, momentum: none, residual: none, delta: { bytes: new Uint8Array(0), sha256: n.delta!.sha256 }, staged: { attempt, parts } });
      expect(await r.commitRound('j', staged(a, 'aaaa', stagedA), [], 2)).toBe(true);
      // the loser's commit changes nothing: its staged files stay where they were, for its closer to discard
      expect(await r.commitRound('j', staged(b, 'bbbb', stagedB), [], 3)).toBe(false);
      expect(existsSync(stagedPath(cp, 'j', 1, 'params', 'bbbb'))).toBe(true);
      r.discardStaged('j', 1, 'bbbb');
      expect(readdirSync(join(cp, 'j')).sort()).toEqual(['v0.params', 'v1.delta', 'v1.momentum', 'v1.params', 'v1.residual']);
      const v1 = (await r.getVersion('j', 1))!;
      expect(v1.params).toEqual(floats(1));
      expect(v1.momentum).toEqual(floats(1.5));
      expect(v1.residual).toEqual(floats(1.75));
      expect(v1.hash).toBe('h1');
      expect(await r.getDelta('j', 1)).toEqual(bytesOf(floats(1.25, 700)));
      expect((await r.listDeltas('j', 0, 1)).map((d) => [d.version, d.bytes, d.sha256])).toEqual([[1, 4 * 700, 'd1']]);
      // a part at or under the threshold stays in the row, staged or not
      const small = { ...next(2), delta: { bytes: new Uint8Array(10).fill(7), sha256: 'd2' } };
      const stagedSmall = await stageParts({ ...out, attempt: 'cccc' }, 'j', 2, { params: bytesOf(small.params), momentum: bytesOf(small.momentum), residual: bytesOf(small.residual!), delta: small.delta.bytes });
      expect(stagedSmall.delta).toBeUndefined();
      expect(await r.commitRound('j', { ...staged(small, 'cccc', stagedSmall), delta: small.delta }, [], 4)).toBe(true);
      expect(new Uint8Array((await r.getDelta('j', 2))!)).toEqual(new Uint8Array(10).fill(7));
      expect((await r.getVersion('j', 2))!.params).toEqual(floats(2));
      // a worker that died after staging, before any commit: its files go on the next open
      await stage('dddd', next(3));
      await stores.close();
      stores = openSqliteStores(file, { checkpointWorker: false, checkpointFileBytes: THRESHOLD });
      expect(readdirSync(join(cp, 'j')).filter((f) => f.endsWith('.staged'))).toEqual([]);
      expect((await stores.relay.getVersion('j', 1))!.params).toEqual(floats(1));
      expect(() => stagedPath(cp, 'j', 1, 'params', '../x')).toThrow(/attempt/);
    } finally {
      await stores.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
