// The store contract (./contract.ts) on the embedded SQLite store, each test on a fresh file.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStores } from '../../server/store/async.ts';
import { describeStoreContract } from './contract.ts';

describeStoreContract('SQLite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tt-store-'));
  const stores = openSqliteStores(join(dir, 'db.sqlite'), { checkpointWorker: false });
  return { stores, close: async () => { await stores.close(); rmSync(dir, { recursive: true, force: true }); } };
});
