// The defence's state on Postgres (../defence-types.ts DefenceStore). A proof-of-work challenge is used
// once (the insert either adds its row or conflicts), and an open spot check is claimed by one taker
// (FOR UPDATE SKIP LOCKED), whichever relay each request reaches. Rate-limit buckets and signed requests
// are one upsert each, on the pool: they never wait for this process's open transactions.
import type { ReputationState } from '../../defence/replication.ts';
import type { DefenceStore, ReplicaRow, UsefulnessRow, VolunteerUsefulness } from '../defence-types.ts';
import type { Ctx } from './context.ts';
import { decide } from '../../defence/rate-limit.ts';

type ReplicaDb = { task_id: string; job_id: string; group_id: string; volunteer_id: string; base_version: number; shard: number; seed: number; payload: Buffer | null; open: number };
type UsefulnessDb = {
  task_id: string; job_id: string; volunteer_id: string; base_version: number;
  loss_before: number | null; loss_after: number | null; loss_drop: number | null; refused: number; scored_at: number;
};
const replica = (r: ReplicaDb): ReplicaRow => ({
  taskId: r.task_id, jobId: r.job_id, groupId: r.group_id, volunteerId: r.volunteer_id, baseVersion: r.base_version,
  shard: r.shard, seed: r.seed, payload: r.payload ? new Uint8Array(r.payload) : null, open: r.open === 1,
});
// NaN is stored as NULL, as the SQLite store does (±Infinity as such)
const real = (v: number) => (Number.isNaN(v) ? null : v);

// The refill of ../../defence/rate-limit.ts refill(): capacity $2, tokens per ms $3, now $4, cost $5. In
// DO UPDATE every expression reads the row as it was, so `ok` and `tokens` agree.
const REFILLED = 'LEAST($2::float8, b.tokens + GREATEST(0, $4::bigint - b.at) * $3::float8)';
const TAKE_TOKENS = `INSERT INTO defence_rate_buckets AS b VALUES ($1, CASE WHEN $2::float8 >= $5::float8 THEN $2::float8 - $5::float8 ELSE $2::float8 END, $4::bigint, $2::float8 >= $5::float8)
  ON CONFLICT (bucket) DO UPDATE SET ok = ${REFILLED} >= $5::float8,
    tokens = ${REFILLED} - CASE WHEN ${REFILLED} >= $5::float8 THEN $5::float8 ELSE 0 END, at = GREATEST(b.at, $4::bigint)
  RETURNING ok, tokens`;

export function createDefenceStore(c: Ctx): DefenceStore {
  return {
    publicKey: async (id) => (await c.one<{ k: string }>('SELECT public_key AS k FROM defence_identities WHERE volunteer_id = $1', [id]))?.k,
    async putPublicKey(id, key, now) {
      await c.run('INSERT INTO defence_identities VALUES ($1, $2, $3) ON CONFLICT (volunteer_id) DO NOTHING', [id, key, now]);
    },
    async reputation(id) {
      const r = await c.one<{ state: ReputationState; clean_streak: number; strikes: number }>(
        'SELECT state, clean_streak, strikes FROM defence_reputation WHERE volunteer_id = $1', [id]);
      return r && { state: r.state, cleanStreak: r.clean_streak, strikes: r.strikes };
    },
    async putReputation(id, r, now) {
      await c.run(`INSERT INTO defence_reputation VALUES ($1, $2, $3, $4, $5) ON CONFLICT (volunteer_id) DO UPDATE SET
        state = excluded.state, clean_streak = excluded.clean_streak, strikes = excluded.strikes, updated_at = excluded.updated_at`,
      [id, r.state, r.cleanStreak, r.strikes, now]);
    },
    async usePowChallenge(challenge, expiresAt, now) {
      await c.run('DELETE FROM defence_pow_used WHERE expires_at < $1', [now]);
      return (await c.run('INSERT INTO defence_pow_used VALUES ($1, $2) ON CONFLICT (challenge) DO NOTHING', [challenge, expiresAt])) === 1;
    },
    async addReplica(r, network, now) {
      await c.run('INSERT INTO defence_replicas VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9, $10)',
        [r.taskId, r.jobId, r.groupId, r.volunteerId, r.baseVersion, r.shard, r.seed, r.open ? 1 : 0, now, network]);
    },
    takeOpenReplica: (jobId, volunteerId, minVersion, network = '') => c.atomic(async (x) => {
      await x.run('UPDATE defence_replicas SET open = 0 WHERE job_id = $1 AND open = 1 AND base_version < $2', [jobId, minVersion]);
      const r = await x.one<ReplicaDb>(`UPDATE defence_replicas SET open = 0 WHERE task_id = (
          SELECT task_id FROM defence_replicas WHERE job_id = $1 AND open = 1 AND volunteer_id != $2 AND base_version >= $3
          AND ($4 = '' OR network != $4) ORDER BY created_at, task_id LIMIT 1 FOR UPDATE SKIP LOCKED)
        AND open = 1 RETURNING *`, [jobId, volunteerId, minVersion, network]);
      // returned as it was when claimed: still open until this claim
      return r && { ...replica(r), open: true };
    }),
    async getReplica(taskId) {
      const r = await c.one<ReplicaDb>('SELECT * FROM defence_replicas WHERE task_id = $1', [taskId]);
      return r && replica(r);
    },
    group: async (groupId) => (await c.rows<ReplicaDb>('SELECT * FROM defence_replicas WHERE group_id = $1 ORDER BY created_at, task_id', [groupId])).map(replica),
    async setReplicaPayload(taskId, payload) {
      await c.run('UPDATE defence_replicas SET payload = $1 WHERE task_id = $2', [Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), taskId]);
    },
    async putUsefulness(r: UsefulnessRow) {
      await c.run(`INSERT INTO defence_usefulness VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (task_id) DO UPDATE SET
        job_id = excluded.job_id, volunteer_id = excluded.volunteer_id, base_version = excluded.base_version, loss_before = excluded.loss_before,
        loss_after = excluded.loss_after, loss_drop = excluded.loss_drop, refused = excluded.refused, scored_at = excluded.scored_at`,
      [r.taskId, r.jobId, r.volunteerId, r.baseVersion, real(r.before), real(r.after), real(r.drop), r.refused ? 1 : 0, r.at]);
    },
    async getUsefulness(taskId) {
      const r = await c.one<UsefulnessDb>('SELECT * FROM defence_usefulness WHERE task_id = $1', [taskId]);
      return r && {
        taskId: r.task_id, jobId: r.job_id, volunteerId: r.volunteer_id, baseVersion: r.base_version,
        before: r.loss_before ?? NaN, after: r.loss_after ?? NaN, drop: r.loss_drop ?? NaN, refused: r.refused === 1, at: r.scored_at,
      };
    },
    async recentRelativeDrops(jobId, limit) {
      const rows = await c.rows<{ ratio: number }>(`SELECT loss_drop / loss_before AS ratio FROM defence_usefulness
        WHERE job_id = $1 AND refused = 0 AND loss_before > 0 AND loss_drop IS NOT NULL ORDER BY scored_at DESC, task_id DESC LIMIT $2`, [jobId, limit]);
      return rows.map((r) => r.ratio);
    },
    async usefulnessByVolunteer(jobId) {
      // AVG skips NULL (NaN) drops, as SQLite's does; 'Infinity' averages to Infinity in both
      const rows = await c.rows<{ volunteer_id: string; scored: number; mean_drop: number | null; not_useful: number }>(`SELECT volunteer_id,
        COUNT(*) AS scored, AVG(loss_drop) AS mean_drop, SUM(refused) AS not_useful FROM defence_usefulness WHERE job_id = $1 GROUP BY volunteer_id`, [jobId]);
      return new Map<string, VolunteerUsefulness>(rows.map((r) => [r.volunteer_id, { scored: r.scored, meanDrop: r.mean_drop, notUseful: r.not_useful }]));
    },
    async takeTokens(bucket, limit, now, cost = 1) {
      const r = (await c.direct<{ ok: boolean; tokens: number }>(TAKE_TOKENS, [bucket, limit.capacity, limit.refillPerSecond / 1000, now, cost]))[0];
      return r.ok ? { ok: true } : decide(r.tokens, cost, limit.refillPerSecond);
    },
    async useRequestSignature(signature, until, now) {
      // a row whose window ended (not yet pruned) counts as unseen, as the in-process window forgets it
      const r = await c.direct(`INSERT INTO defence_seen_requests AS s VALUES ($1, $2) ON CONFLICT (signature)
        DO UPDATE SET until_at = excluded.until_at WHERE s.until_at <= $3 RETURNING 1`, [signature, until, now]);
      return r.length === 1;
    },
    async pruneShortLived(now, idleSince) {
      await c.direct(`WITH seen AS (DELETE FROM defence_seen_requests WHERE until_at <= $1)
        DELETE FROM defence_rate_buckets WHERE at < $2`, [now, idleSince]);
    },
  };
}
