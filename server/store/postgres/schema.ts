// The Postgres schema: the same tables the SQLite file holds (server/store/sqlite.ts, the operator plugin's
// ops_* tables, the defence's defence_* tables, job_finish), as numbered migrations applied once each
// (./migrate.ts). Differences from SQLite, each for a reason:
// - every binary payload (checkpoints, deltas, residuals, update payloads, shards) is BYTEA in its row:
//   relays on different machines share them through the database alone, with no payload directory;
// - times in ms and counters are BIGINT (ms since 1970 passes 2^31), SQLite's REAL is DOUBLE PRECISION;
// - tasks and updates get an identity column `seq` where SQLite code reads `rowid` (incremental tallies,
//   the newest norms);
// - relay_meta holds what every relay must agree on and SQLite keeps as a file: the lease secret.
// Flags stay 0/1 integers as in SQLite, so the two stores' queries and rows read alike.

export type Migration = { name: string; sql: string };

export const migrations: Migration[] = [
  {
    name: 'relay tables',
    sql: `
      CREATE TABLE jobs (
        job_id TEXT PRIMARY KEY, spec TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending','running','paused','done')),
        version INTEGER NOT NULL, round_started_at BIGINT NOT NULL, shard_cursor BIGINT NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        pending_updates INTEGER NOT NULL DEFAULT 0, issued_tasks INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE versions (
        job_id TEXT NOT NULL, version INTEGER NOT NULL, hash TEXT NOT NULL,
        params BYTEA NOT NULL, momentum BYTEA NOT NULL, created_at BIGINT NOT NULL,
        delta BYTEA, delta_sha256 TEXT, residual BYTEA,
        PRIMARY KEY (job_id, version));
      CREATE TABLE volunteers (volunteer_id TEXT PRIMARY KEY, agent TEXT NOT NULL, device TEXT NOT NULL, created_at BIGINT NOT NULL);
      CREATE TABLE tasks (
        task_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, volunteer_id TEXT NOT NULL, base_version INTEGER NOT NULL,
        shard INTEGER NOT NULL, seed BIGINT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('issued','accepted','rejected','expired')),
        issued_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, reissue_of TEXT, reissued SMALLINT NOT NULL DEFAULT 0,
        payload_hash TEXT, ack TEXT,
        seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE);
      CREATE INDEX tasks_due ON tasks (state, expires_at);
      CREATE INDEX tasks_job_state ON tasks (job_id, state);
      CREATE TABLE updates (
        task_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, volunteer_id TEXT NOT NULL, base_version INTEGER NOT NULL,
        round INTEGER NOT NULL, weight DOUBLE PRECISION NOT NULL, payload BYTEA NOT NULL, payload_hash TEXT NOT NULL,
        losses TEXT NOT NULL, samples BIGINT NOT NULL, compute_ms DOUBLE PRECISION NOT NULL, accepted_at BIGINT NOT NULL,
        applied_in INTEGER, discarded SMALLINT NOT NULL DEFAULT 0,
        norm DOUBLE PRECISION NOT NULL DEFAULT 0,
        payload_bytes BIGINT NOT NULL DEFAULT 0,
        payload_kept SMALLINT NOT NULL DEFAULT 1,
        seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE);
      CREATE INDEX updates_pending ON updates (job_id, applied_in, discarded);
      CREATE INDEX updates_kept ON updates (job_id, payload_kept, applied_in);
      CREATE TABLE evals (job_id TEXT NOT NULL, version INTEGER NOT NULL, loss DOUBLE PRECISION NOT NULL,
        accuracy DOUBLE PRECISION NOT NULL, at BIGINT NOT NULL, PRIMARY KEY (job_id, version));
      CREATE TABLE job_finish (
        job_id TEXT PRIMARY KEY, rule TEXT NOT NULL, reason TEXT NOT NULL, released_version INTEGER NOT NULL,
        released_hash TEXT NOT NULL, loss DOUBLE PRECISION, accuracy DOUBLE PRECISION, at BIGINT NOT NULL);
      CREATE TABLE relay_meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL);`,
  },
  {
    name: 'operator tables',
    sql: `
      CREATE TABLE ops_audit (
        seq BIGINT PRIMARY KEY, at BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, job_id TEXT,
        detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
      CREATE INDEX ops_audit_job ON ops_audit (job_id, seq);
      CREATE TABLE ops_tokens (
        id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('operator', 'researcher')),
        name TEXT NOT NULL, created_at BIGINT NOT NULL, revoked_at BIGINT);
      CREATE TABLE ops_jobs (
        job_id TEXT PRIMARY KEY, owner_token_id TEXT NOT NULL, owner_name TEXT NOT NULL,
        max_loss_rise DOUBLE PRECISION NOT NULL, tokenizer TEXT,
        dataset_kind TEXT NOT NULL CHECK (dataset_kind IN ('labelled', 'text')), submitted_at BIGINT NOT NULL);
      CREATE TABLE ops_shards (
        job_id TEXT NOT NULL,
        shard INTEGER NOT NULL, -- -1 is the held-out split
        bytes BYTEA NOT NULL,
        PRIMARY KEY (job_id, shard));`,
  },
  {
    name: 'defence tables',
    sql: `
      CREATE TABLE defence_identities (volunteer_id TEXT PRIMARY KEY, public_key TEXT NOT NULL, created_at BIGINT NOT NULL);
      CREATE TABLE defence_reputation (volunteer_id TEXT PRIMARY KEY, state TEXT NOT NULL, clean_streak INTEGER NOT NULL,
        strikes INTEGER NOT NULL, updated_at BIGINT NOT NULL);
      CREATE TABLE defence_pow_used (challenge TEXT PRIMARY KEY, expires_at BIGINT NOT NULL);
      CREATE TABLE defence_replicas (
        task_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, group_id TEXT NOT NULL, volunteer_id TEXT NOT NULL,
        base_version INTEGER NOT NULL, shard INTEGER NOT NULL, seed BIGINT NOT NULL,
        payload BYTEA, open SMALLINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL,
        network TEXT NOT NULL DEFAULT '');
      CREATE INDEX defence_replicas_open ON defence_replicas (job_id, open);
      CREATE INDEX defence_replicas_group ON defence_replicas (group_id);
      CREATE TABLE defence_usefulness (
        task_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, volunteer_id TEXT NOT NULL, base_version INTEGER NOT NULL,
        loss_before DOUBLE PRECISION, loss_after DOUBLE PRECISION, loss_drop DOUBLE PRECISION,
        refused SMALLINT NOT NULL, scored_at BIGINT NOT NULL);
      CREATE INDEX defence_usefulness_job ON defence_usefulness (job_id, volunteer_id);`,
  },
  {
    // the usefulness check's relative floor reads a job's latest accepted scores at every upload
    name: 'recent usefulness index',
    sql: 'CREATE INDEX defence_usefulness_recent ON defence_usefulness (job_id, refused, scored_at);',
  },
  {
    // counting one volunteer's live tasks at every lease (swarm jobs) reads this instead of all the job's issued tasks
    name: 'tasks by volunteer index',
    sql: 'CREATE INDEX tasks_volunteer ON tasks (job_id, volunteer_id, state);',
  },
  {
    // rate-limit buckets and the replay window of signed task requests, shared so they hold across relays
    // (../defence-types.ts takeTokens). UNLOGGED: written at every request, so no WAL flush each time; a
    // database crash empties them, which only forgets limits and signatures for a moment
    name: 'shared rate limits and replay window',
    sql: `
      CREATE UNLOGGED TABLE defence_rate_buckets (
        bucket TEXT PRIMARY KEY, tokens DOUBLE PRECISION NOT NULL, at BIGINT NOT NULL, ok BOOLEAN NOT NULL);
      CREATE UNLOGGED TABLE defence_seen_requests (signature TEXT PRIMARY KEY, until_at BIGINT NOT NULL);`,
  },
  {
    // large checkpoint parts as chunk rows (./chunks.ts): a bytea stops at 1 GB, and pg cannot read one
    // past a few hundred MB; `external_parts` names a version's chunked parts and their sizes (JSON), as
    // SQLite's column of the same name names its checkpoint files
    name: 'checkpoint chunks',
    sql: `
      ALTER TABLE versions ADD COLUMN external_parts TEXT;
      CREATE TABLE version_chunks (
        job_id TEXT NOT NULL, version INTEGER NOT NULL, part TEXT NOT NULL, idx INTEGER NOT NULL, bytes BYTEA NOT NULL,
        PRIMARY KEY (job_id, version, part, idx),
        FOREIGN KEY (job_id, version) REFERENCES versions (job_id, version) ON DELETE CASCADE);`,
  },
];
