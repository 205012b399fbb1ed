// A child process for the group-commit kill test (test/store/group-commit-kill.test.ts): opens the store
// (a SQLite file, or a postgres:// URL), makes a job with `count` issued tasks, prints READY, then accepts
// an update for each, 32 at a time, printing "ACK <taskId>" the moment each acceptUpdate resolves: what a
// relay would have acknowledged. The test kills it with SIGKILL part-way.
import { defaultJobSpec } from '../../server/default-job.ts';
import { openSqliteStores } from '../../server/store/async.ts';
import { openPostgresStores } from '../../server/store/postgres/index.ts';
import type { Stores } from '../../server/store/types.ts';

const [where, countArg] = process.argv.slice(2);
const count = Number(countArg);
const stores: Stores = where.startsWith('postgres://') ? await openPostgresStores(where) : openSqliteStores(where, { checkpointWorker: false });
await stores.relay.createJob('k', defaultJobSpec(), 'running', { params: new Float32Array(4), hash: 'h0' }, 1);
const ids = Array.from({ length: count }, (_, i) => `t${i}`);
await stores.transaction(async (tx) => {
  for (const taskId of ids) {
    await tx.relay.insertTask({ taskId, jobId: 'k', volunteerId: 'v', baseVersion: 0, shard: 0, seed: 1, state: 'issued', issuedAt: 1, expiresAt: 1e15, reissueOf: null, payloadHash: null, ack: null });
  }
});
process.stdout.write('READY\n');
// payloads big enough that a batch takes a while to write (SQLite keeps ones this size inline)
const payload = new Uint8Array(64 * 1024).fill(7);
let next = 0;
await Promise.all(Array.from({ length: 32 }, async () => {
  while (next < ids.length) {
    const taskId = ids[next++];
    await stores.relay.acceptUpdate({ taskId, jobId: 'k', volunteerId: 'v', baseVersion: 0, round: 0, weight: 1, payload, payloadHash: `p-${taskId}`,
      losses: [1], samples: 1, computeMs: 1, acceptedAt: 2, norm: 1 }, '{}');
    process.stdout.write(`ACK ${taskId}\n`);
  }
}));
process.stdout.write('DONE\n');
await stores.close();
