// A version larger than SQLite's value limit (1e9 bytes), stored and streamed back for real: about a minute of
// disk writes, too slow for the suite (test/store/large-checkpoints.test.ts takes the same path at a
// 1,000-byte threshold). Prints what it wrote, what came back and the time each took.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultJobSpec } from '../server/default-job.ts';
import { openSqliteStores } from '../server/store/async.ts';

const dir = mkdtempSync(join(tmpdir(), 'tt-big-'));
const stores = openSqliteStores(join(dir, 'tabtrain.sqlite'), { checkpointWorker: false });
try {
  const n = 250_000_128; // untouched zeros cost no resident memory until written out
  const params = new Float32Array(n);
  params[0] = 1;
  params[n - 1] = 2;
  const t0 = performance.now();
  await stores.relay.createJob('j', defaultJobSpec(), 'running', { params, hash: 'h' }, 1);
  const t1 = performance.now();
  const p = await stores.relay.paramsRead('j', 0);
  if (!p || p.bytes !== 4 * n) throw new Error(`stored ${p?.bytes} bytes, expected ${4 * n}`);
  let got = 0, first = 0, last = 0;
  for await (const c of p.stream() as AsyncIterable<Buffer>) {
    if (got === 0) first = c.readFloatLE(0);
    got += c.length;
    last = c.readFloatLE(c.length - 4);
  }
  const t2 = performance.now();
  if (got !== 4 * n || first !== 1 || last !== 2) throw new Error(`streamed ${got} bytes, first ${first}, last ${last}: not what was stored`);
  console.log(`big-version: stored ${4 * n} bytes in ${((t1 - t0) / 1000).toFixed(1)} s, streamed them back intact in ${((t2 - t1) / 1000).toFixed(1)} s`);
} finally {
  await stores.close();
  rmSync(dir, { recursive: true, force: true });
}
