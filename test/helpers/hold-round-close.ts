// A relay's round close that stops inside its transaction: run as a child process by a test, it commits
// a round through the Postgres store and, from within that transaction (job row locked, version bumped,
// checkpoint written), prints "holding" and waits to be killed. Args: database URL, job id.
import { openPostgresStores } from '../../server/store/postgres/index.ts';

const [url, jobId] = process.argv.slice(2);
const stores = await openPostgresStores(url);
stores.onCommitting('round-committed', async () => {
  process.stdout.write('holding\n');
  await new Promise(() => undefined);
});
const n = 8;
await stores.relay.commitRound(jobId, { version: 1, params: new Float32Array(n).fill(9), momentum: new Float32Array(n), hash: 'from-the-killed-relay' }, [], Date.now());
