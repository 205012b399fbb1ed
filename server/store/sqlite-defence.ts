// The defence's own tables on the relay's SQLite handle, synchronous (./async.ts makes them a DefenceStore) (its own migration counter, so it never clashes
// with server/store's user_version): volunteer public keys, reputation records, spot-check pairs, and
// used proof-of-work challenges (one solution mints one identity), and usefulness scores of updates.
import type Database from 'better-sqlite3';
import { newVolunteerRecord, type ReputationState, type VolunteerRecord } from '../defence/replication.ts';
import type { ReplicaRow, UsefulnessRow, VolunteerUsefulness } from './defence-types.ts';

export type { ReplicaRow, UsefulnessRow, VolunteerUsefulness };

const migrations: string[] = [
  `CREATE TABLE defence_identities (volunteer_id TEXT PRIMARY KEY, public_key TEXT NOT NULL, created_at INTEGER NOT NULL);
   CREATE TABLE defence_reputation (volunteer_id TEXT PRIMARY KEY, state TEXT NOT NULL, clean_streak INTEGER NOT NULL,
     strikes INTEGER NOT NULL, updated_at INTEGER NOT NULL);
   CREATE TABLE defence_pow_used (challenge TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
   CREATE TABLE defence_replicas (
     task_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, group_id TEXT NOT NULL, volunteer_id TEXT NOT NULL,
     base_version INTEGER NOT NULL, shard INTEGER NOT NULL, seed INTEGER NOT NULL,
     payload BLOB, open INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL);
   CREATE INDEX defence_replicas_open ON defence_replicas (job_id, open);
   CREATE INDEX defence_replicas_group ON defence_replicas (group_id);`,
  // usefulness scores (server/defence/usefulness.ts): one per scored upload, refused ones too; a NaN loss is NULL
  `CREATE TABLE defence_usefulness (
     task_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, volunteer_id TEXT NOT NULL, base_version INTEGER NOT NULL,
     loss_before REAL, loss_after REAL, loss_drop REAL, refused INTEGER NOT NULL, scored_at INTEGER NOT NULL);
   CREATE INDEX defence_usefulness_job ON defence_usefulness (job_id, volunteer_id);`,
  // the network a replica was leased from ('' = not recorded): a check's second copy goes to another network
  `ALTER TABLE defence_replicas ADD COLUMN network TEXT NOT NULL DEFAULT '';`,
];


export function openDefenceStore(db: Database.Database) {
  db.exec('CREATE TABLE IF NOT EXISTS defence_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)');
  const at = (db.prepare("SELECT value FROM defence_meta WHERE key = 'schema'").get() as { value: number } | undefined)?.value ?? 0;
  for (let i = at; i < migrations.length; i++) {
    db.transaction(() => {
      db.exec(migrations[i]);
      db.prepare("INSERT INTO defence_meta VALUES ('schema', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(i + 1);
    })();
  }
  const q = {
    getKey: db.prepare('SELECT public_key AS k FROM defence_identities WHERE volunteer_id = ?'),
    putKey: db.prepare('INSERT OR IGNORE INTO defence_identities VALUES (?, ?, ?)'),
    getRep: db.prepare('SELECT state, clean_streak, strikes FROM defence_reputation WHERE volunteer_id = ?'),
    putRep: db.prepare(`INSERT INTO defence_reputation VALUES (?, ?, ?, ?, ?) ON CONFLICT(volunteer_id) DO UPDATE SET
      state = excluded.state, clean_streak = excluded.clean_streak, strikes = excluded.strikes, updated_at = excluded.updated_at`),
    usePow: db.prepare('INSERT OR IGNORE INTO defence_pow_used VALUES (?, ?)'),
    prunePow: db.prepare('DELETE FROM defence_pow_used WHERE expires_at < ?'),
    addReplica: db.prepare('INSERT INTO defence_replicas VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)'),
    takeOpen: db.prepare(`SELECT * FROM defence_replicas WHERE job_id = ? AND open = 1 AND volunteer_id != ? AND base_version >= ?
      AND (? = '' OR network != ?) ORDER BY created_at LIMIT 1`),
    close: db.prepare('UPDATE defence_replicas SET open = 0 WHERE task_id = ?'),
    getReplica: db.prepare('SELECT * FROM defence_replicas WHERE task_id = ?'),
    group: db.prepare('SELECT * FROM defence_replicas WHERE group_id = ?'),
    setPayload: db.prepare('UPDATE defence_replicas SET payload = ? WHERE task_id = ?'),
    dropStale: db.prepare('UPDATE defence_replicas SET open = 0 WHERE job_id = ? AND open = 1 AND base_version < ?'),
    // a task scored again (the relay stopped between scoring its upload and storing it; the volunteer re-sent) replaces its row
    putUsefulness: db.prepare('INSERT OR REPLACE INTO defence_usefulness VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)'),
    getUsefulness: db.prepare('SELECT * FROM defence_usefulness WHERE task_id = ?'),
    usefulnessByVolunteer: db.prepare(`SELECT volunteer_id, COUNT(*) AS scored, AVG(loss_drop) AS mean_drop, SUM(refused) AS not_useful
      FROM defence_usefulness WHERE job_id = ? GROUP BY volunteer_id`),
  };
  // The norm bound's history is the relay's own record of accepted updates (server/store's updates table:
  // norm measured at intake, discarded = 1 once a rollback dropped it); read, never written, here, and only
  // when the scheduler rebuilds its in-memory copy (first upload after a start or a rollback).
  // Prepared on first use: the defence store may open on a database the relay's store has not migrated.
  let recentNormsQ: Database.Statement<[string, number], { norm: number }> | undefined;
  type UsefulnessDb = {
    task_id: string; job_id: string; volunteer_id: string; base_version: number;
    loss_before: number | null; loss_after: number | null; loss_drop: number | null; refused: number; scored_at: number;
  };
  type ReplicaDb = { task_id: string; job_id: string; group_id: string; volunteer_id: string; base_version: number; shard: number; seed: number; payload: Buffer | null; open: number };
  const replica = (r: ReplicaDb | undefined): ReplicaRow | undefined => r && {
    taskId: r.task_id, jobId: r.job_id, groupId: r.group_id, volunteerId: r.volunteer_id, baseVersion: r.base_version,
    shard: r.shard, seed: r.seed, payload: r.payload ? new Uint8Array(r.payload) : null, open: r.open === 1,
  };

  function storedReputation(volunteerId: string): VolunteerRecord | undefined {
    const r = q.getRep.get(volunteerId) as { state: ReputationState; clean_streak: number; strikes: number } | undefined;
    return r && { state: r.state, cleanStreak: r.clean_streak, strikes: r.strikes };
  }

  return {
    publicKey: (volunteerId: string): string | undefined => (q.getKey.get(volunteerId) as { k: string } | undefined)?.k,
    putPublicKey: (volunteerId: string, key: string, now: number): void => { q.putKey.run(volunteerId, key, now); },
    reputation(volunteerId: string): VolunteerRecord {
      return storedReputation(volunteerId) ?? newVolunteerRecord();
    },
    /** The stored record, or undefined for a volunteer never judged. */
    storedReputation,
    putReputation(volunteerId: string, r: VolunteerRecord, now: number): void {
      q.putRep.run(volunteerId, r.state, r.cleanStreak, r.strikes, now);
    },
    /** True the first time a challenge is used; false if it was used before (replayed solution). */
    usePowChallenge(challenge: string, expiresAt: number, now: number): boolean {
      q.prunePow.run(now);
      return q.usePow.run(challenge, expiresAt).changes === 1;
    },
    /** Records a task of a spot-check group; `open` = still waiting for its second volunteer. */
    /** `network`: where its volunteer leased it from ('' when pairing ignores networks). */
    addReplica(r: Omit<ReplicaRow, 'payload'>, network: string, now: number): void {
      q.addReplica.run(r.taskId, r.jobId, r.groupId, r.volunteerId, r.baseVersion, r.shard, r.seed, r.open ? 1 : 0, now, network);
    },
    /** The oldest open spot check of this job another volunteer may take (base version not older than minVersion),
     * leased from a network other than `network` (any, when it is ''). */
    takeOpenReplica(jobId: string, volunteerId: string, minVersion: number, network = ''): ReplicaRow | undefined {
      q.dropStale.run(jobId, minVersion);
      const r = replica(q.takeOpen.get(jobId, volunteerId, minVersion, network, network) as ReplicaDb | undefined);
      if (r) q.close.run(r.taskId);
      return r;
    },
    getReplica: (taskId: string): ReplicaRow | undefined => replica(q.getReplica.get(taskId) as ReplicaDb | undefined),
    group: (groupId: string): ReplicaRow[] => (q.group.all(groupId) as ReplicaDb[]).map((r) => replica(r)!),
    setReplicaPayload: (taskId: string, payload: Uint8Array): void => { q.setPayload.run(Buffer.from(payload), taskId); },
    putUsefulness(r: UsefulnessRow): void {
      const real = (v: number) => (Number.isNaN(v) ? null : v); // ±Infinity is stored as such
      q.putUsefulness.run(r.taskId, r.jobId, r.volunteerId, r.baseVersion, real(r.before), real(r.after), real(r.drop), r.refused ? 1 : 0, r.at);
    },
    getUsefulness(taskId: string): UsefulnessRow | undefined {
      const r = q.getUsefulness.get(taskId) as UsefulnessDb | undefined;
      return r && {
        taskId: r.task_id, jobId: r.job_id, volunteerId: r.volunteer_id, baseVersion: r.base_version,
        before: r.loss_before ?? NaN, after: r.loss_after ?? NaN, drop: r.loss_drop ?? NaN, refused: r.refused === 1, at: r.scored_at,
      };
    },
    /** The job's last `limit` accepted, not discarded, non-zero update norms, oldest first. */
    recentNorms(jobId: string, limit: number): number[] {
      recentNormsQ ??= db.prepare<[string, number], { norm: number }>(`SELECT norm FROM updates
        WHERE job_id = ? AND discarded = 0 AND norm > 0 ORDER BY accepted_at DESC, rowid DESC LIMIT ?`);
      return recentNormsQ.all(jobId, limit).map((r) => r.norm).reverse();
    },
    usefulnessByVolunteer(jobId: string): Map<string, VolunteerUsefulness> {
      const rows = q.usefulnessByVolunteer.all(jobId) as { volunteer_id: string; scored: number; mean_drop: number | null; not_useful: number }[];
      return new Map(rows.map((r) => [r.volunteer_id, { scored: r.scored, meanDrop: r.mean_drop, notUseful: r.not_useful }]));
    },
  };
}
export type SqliteDefence = ReturnType<typeof openDefenceStore>;
