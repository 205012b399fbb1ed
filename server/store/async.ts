// The embedded SQLite store as `Stores`: the synchronous cores (./sqlite.ts, ./sqlite-ops.ts,
// ./sqlite-defence.ts; better-sqlite3 is synchronous) behind the asynchronous interface every caller
// uses (./types.ts). One connection, so a transaction holds a gate: other calls wait for it to commit
// or roll back, calls made inside it go through its handle. A write that fires events runs in a
// transaction of its own, so listeners registered with `onCommitting` (the audit log) commit with it.
import { AsyncLocalStorage } from 'node:async_hooks';
import type Database from 'better-sqlite3';
import type { Eval } from '../../shared/protocol/messages.ts';
import { StoreUsageError } from './errors.ts';
import { groupCommit, type GroupCommitOptions, type ItemOutcome } from './group-commit.ts';
import type { DefenceStore } from './defence-types.ts';
import type { OpsStore } from './ops-types.ts';
import { migrateOpsTables, sqliteOps } from './sqlite-ops.ts';
import { openDefenceStore } from './sqlite-defence.ts';
import { memoryShortLived } from '../defence/rate-limit.ts';
import { openSqliteStore, type SqliteStore, type SqliteStoreOptions } from './sqlite.ts';
import { addListener, type Listener, type RelayStore, type StoreEventName, type StoreEvents, type Stores, type NewUpdate, newPayloadBytes } from './types.ts';

type Pending = { [E in StoreEventName]: { name: E; event: StoreEvents[E] } }[StoreEventName];
/** One open transaction: the events its changes fired so far, and how many of them (from the first)
 * already ran their onCommitting listeners. */
type Tx = { events: Pending[]; ran: number; depth: number; open: boolean };

export type AsyncStoreOptions = SqliteStoreOptions & {
  /** where a listener's failure is reported (it never undoes the change it heard about) */
  onListenerError?: (err: unknown, event: StoreEventName) => void;
  /** accepted updates written outside a transaction share one with those that arrive together
   * (./group-commit.ts); false: one transaction each */
  groupCommit?: GroupCommitOptions | false;
};

const acceptedEvent = (u: NewUpdate): StoreEvents['update-accepted'] =>
  ({ jobId: u.jobId, taskId: u.taskId, volunteerId: u.volunteerId, samples: u.samples, bytes: newPayloadBytes(u), at: u.acceptedAt });

/** Opens the SQLite file as `Stores` (migrating the relay's, the operator plugin's and the defence's tables). */
export function openSqliteStores(file: string, o: AsyncStoreOptions = {}): Stores & { core: SqliteStore } {
  return sqliteStores(openSqliteStore(file, o), o);
}

/** `Stores` over an open synchronous core (the relay still holding it for callers not yet moved). */
export function sqliteStores(core: SqliteStore, o: AsyncStoreOptions = {}): Stores & { core: SqliteStore } {
  const db: Database.Database = core.db;
  migrateOpsTables(db);
  const ops = sqliteOps(db);
  const defence = openDefenceStore(db);
  // one file serves one relay: its rate-limit buckets and replay window stay in this process
  const shortLived = memoryShortLived();
  const after = new Map<StoreEventName, Set<(e: never) => void | Promise<void>>>();
  const committing = new Map<StoreEventName, Set<Listener<never, Stores>>>();
  const inTx = new AsyncLocalStorage<Tx>();
  let gate: Promise<void> | undefined;
  let closed = false;

  const report = (err: unknown, name: StoreEventName) =>
    (o.onListenerError ?? ((e, n) => o.warn?.({ err: e, event: n }, 'store event listener failed')))(err, name);

  /** Runs the after-commit listeners in order, each to completion; a failure is reported, never thrown. */
  async function emitAfter(events: Pending[]): Promise<void> {
    for (const p of events) {
      for (const l of after.get(p.name) ?? []) {
        try {
          await (l as (e: unknown) => void | Promise<void>)(p.event);
        } catch (e) { report(e, p.name); }
      }
    }
  }

  /** Refuses a call on the outer handle from inside a transaction (it would wait for itself), or after close. */
  function outside(): void {
    if (closed) throw new StoreUsageError('the store is closed');
    // work scheduled from inside a transaction (a timer) carries its context on after it ended: only an open one counts
    if (inTx.getStore()?.open) throw new StoreUsageError('a call on the outer store handle inside a transaction would wait for that transaction forever; use the handle the transaction gave');
  }

  /** Runs fn in a new top-level transaction: BEGIN IMMEDIATE, fn, committing listeners, COMMIT; events after. */
  async function topLevel<T>(fn: (tx: Stores) => Promise<T>): Promise<T> {
    outside();
    // checked and taken with no await in between: of concurrent callers exactly one holds the connection
    while (gate) await gate;
    let open!: () => void;
    gate = new Promise<void>((r) => { open = r; });
    const tx: Tx = { events: [], ran: 0, depth: 0, open: true };
    db.exec('BEGIN IMMEDIATE');
    try {
      const result = await inTx.run(tx, async () => {
        const handle = facets(tx);
        const r = await fn(handle);
        await runCommitting(tx, handle);
        return r;
      });
      db.exec('COMMIT');
      core.settleFiles(true); // files whose rows this transaction dropped go now
      tx.open = false;
      gate = undefined; open();
      await emitAfter(tx.events);
      return result;
    } catch (e) {
      if (db.inTransaction) db.exec('ROLLBACK');
      core.settleFiles(false);
      tx.open = false;
      gate = undefined; open();
      throw e;
    }
  }

  /** The onCommitting listeners of the events not yet heard, until none of them fires anything new. */
  async function runCommitting(tx: Tx, handle: Stores): Promise<void> {
    for (; tx.ran < tx.events.length; tx.ran++) {
      const p = tx.events[tx.ran];
      for (const l of committing.get(p.name) ?? []) await (l as Listener<StoreEventName, Stores>)(p.event, handle);
    }
  }

  /** One transaction for a batch of accepted updates (./group-commit.ts): each item is its own savepoint
   * (core.acceptUpdate is one, and so is an item whose onCommitting listeners run), so an item that fails
   * is undone alone and answered with its own error; the others commit together. */
  async function acceptBatch(items: { u: NewUpdate; ack: string }[]): Promise<ItemOutcome<void>[]> {
    // a batch started from a request's continuation must not inherit that request's transaction context
    return inTx.exit(() => topLevel(async () => {
      const tx = inTx.getStore()!;
      const listened = (committing.get('update-accepted')?.size ?? 0) > 0;
      const out: ItemOutcome<void>[] = [];
      for (const { u, ack } of items) {
        try {
          if (listened) {
            await nested(tx, async (h) => { await h.relay.acceptUpdate(u, ack); await runCommitting(tx, h); });
          } else {
            core.acceptUpdate(u, ack);
            tx.events.push({ name: 'update-accepted', event: acceptedEvent(u) });
            tx.ran = tx.events.length; // no onCommitting listener for it
          }
          out.push({ ok: true, value: undefined });
        } catch (error) {
          out.push({ ok: false, error });
        }
      }
      return out;
    }));
  }
  const batched = o.groupCommit === false ? undefined : groupCommit(acceptBatch, o.groupCommit);

  /** A nested transaction: a savepoint of the open one; its events are dropped if it rolls back. */
  async function nested<T>(tx: Tx, fn: (tx: Stores) => Promise<T>): Promise<T> {
    const name = `sp${++tx.depth}`;
    const mark = tx.events.length;
    const files = core.filesMark();
    db.exec(`SAVEPOINT ${name}`);
    try {
      const r = await fn(facets(tx));
      db.exec(`RELEASE ${name}`);
      return r;
    } catch (e) {
      db.exec(`ROLLBACK TO ${name}`);
      db.exec(`RELEASE ${name}`);
      tx.events.length = mark;
      tx.ran = Math.min(tx.ran, mark);
      core.settleFiles(false, files); // the files of rows it dropped stay: the rows are back
      throw e;
    } finally {
      tx.depth--;
    }
  }

  function facets(tx: Tx | undefined): Stores {
    /** A read: at once inside the transaction, else once no transaction holds the connection. */
    const read = <A extends unknown[], R>(f: (...a: A) => R) => async (...a: A): Promise<R> => {
      if (!tx) {
        outside();
        while (gate) await gate; // no await between this check and the read: never inside another's transaction
      }
      return f(...a);
    };
    /** A write that may fire events: inside the transaction, or in one of its own. */
    const write = <A extends unknown[], R>(f: (fire: (p: Pending) => void, ...a: A) => R) => (...a: A): Promise<R> => {
      if (tx) return Promise.resolve().then(() => f((p) => tx.events.push(p), ...a));
      return topLevel(async () => f((p) => inTx.getStore()!.events.push(p), ...a));
    };

    const relay: RelayStore = {
      createJob: write((fire, jobId, spec, status, initial, now) => {
        const job = core.createJob(jobId, spec, status, initial, now);
        fire({ name: 'job-created', event: { job } });
        return job;
      }),
      getJob: read(core.getJob),
      listJobs: read(core.listJobs),
      setJobStatus: write((fire, jobId, status, now) => {
        const from = core.getJob(jobId)?.status;
        const job = core.setJobStatus(jobId, status, now);
        fire({ name: 'job-state-changed', event: { jobId, from: from!, to: status, at: now } });
        return job;
      }),
      setHyperparameters: write((fire, jobId, h) => {
        const job = core.setHyperparameters(jobId, h);
        fire({ name: 'hyperparameters-changed', event: { jobId, hyperparameters: h } });
        return job;
      }),
      rollback: write((fire, jobId, version, now) => {
        const from = core.getJob(jobId)?.version;
        const job = core.rollback(jobId, version, now);
        fire({ name: 'rolled-back', event: { jobId, from: from!, to: version, at: now } });
        return job;
      }),
      getVersion: read(core.getVersion),
      getParams: read(core.getParams),
      versionHash: read(core.versionHash),
      listVersions: read(core.listVersions),
      listCheckpoints: read(core.listCheckpoints),
      paramsSource: (jobId, version) => ({ db: db.name, jobId, version }),
      roundOutput: () => core.roundOutput(),
      discardStaged: (jobId, version, attempt) => core.discardStaged(jobId, version, attempt),
      paramsRead: read(core.paramsRead),
      pruneHistory: write((_fire, jobId, upTo, every) => core.pruneHistory(jobId, upTo, every)),
      pruneBytes: write((_fire, jobId, budget, keepFrom) => core.pruneBytes(jobId, budget, keepFrom)),
      checkpointBytes: read(core.checkpointBytes),
      commitRound: write((fire, jobId, next, taskIds, now) => {
        const ok = core.commitRound(jobId, next, taskIds, now);
        if (ok) fire({ name: 'round-committed', event: { jobId, version: next.version, hash: next.hash, taskIds, at: now } });
        return ok;
      }),
      getDelta: read(core.getDelta),
      listDeltas: read(core.listDeltas),
      addVolunteer: write((_fire, id, agent, device, now) => core.addVolunteer(id, agent, device, now)),
      hasVolunteer: read(core.hasVolunteer),
      volunteerDevice: read(core.volunteerDevice),
      countVolunteers: read(core.countVolunteers),
      insertTask: write((fire, task) => {
        core.insertTask(task);
        fire({ name: 'task-issued', event: { task } });
      }),
      getTask: read(core.getTask),
      countLiveTasks: read(core.countLiveTasks),
      countLiveTasksOf: read(core.countLiveTasksOf),
      countTasks: read(core.countTasks),
      expireDueTasks: write((fire, now) => {
        const due = core.expireDueTasks(now);
        if (due.length) fire({ name: 'tasks-ended', event: { state: 'expired', tasks: due.map(({ taskId, jobId, volunteerId }) => ({ taskId, jobId, volunteerId })) } });
        return due;
      }),
      takeReissue: write((_fire, jobId) => core.takeReissue(jobId)),
      rejectTask: write((fire, taskId) => {
        const t = core.getTask(taskId);
        const ok = core.rejectTask(taskId);
        if (ok && t) fire({ name: 'tasks-ended', event: { state: 'rejected', tasks: [{ taskId, jobId: t.jobId, volunteerId: t.volunteerId }] } });
        return ok;
      }),
      endLeases: write((fire, jobId, above) => {
        const ended = core.endLeases(jobId, above);
        if (ended.length) fire({ name: 'tasks-ended', event: { state: 'rejected', tasks: ended.map(({ taskId, volunteerId }) => ({ taskId, jobId, volunteerId })) } });
        return ended.length;
      }),
      nextShard: write((_fire, jobId, shards) => core.nextShard(jobId, shards)),
      acceptUpdate: !tx && batched
        ? async (u, ack) => { outside(); return batched.submit({ u, ack }); }
        : write((fire, u, ack) => {
          core.acceptUpdate(u, ack);
          fire({ name: 'update-accepted', event: acceptedEvent(u) });
        }),
      pendingUpdates: read(core.pendingUpdates),
      pendingUpdateIds: read(core.pendingUpdateIds),
      // may discard an update whose payload file is gone: a write
      pendingUpdate: write((_fire, taskId) => core.pendingUpdate(taskId)),
      pendingNorms: read(core.pendingNorms),
      pendingMeanSamples: read(core.pendingMeanSamples),
      countPendingUpdates: read(core.countPendingUpdates),
      appliedUpdates: read(core.appliedUpdates),
      appliedAfter: read(core.appliedAfter),
      listUpdates: read(core.listUpdates),
      recentNorms: read(core.recentNorms),
      samplesApplied: read(core.samplesApplied),
      tasksSince: read(core.tasksSince),
      updatesSince: read(core.updatesSince),
      putEval: write((fire, jobId, e: Eval) => {
        const earlier = core.listEvals(jobId);
        core.putEval(jobId, e);
        fire({ name: 'eval-stored', event: { jobId, eval: e, earlier } });
      }),
      listEvals: read(core.listEvals),
      countEvals: read(core.countEvals),
      thinnedEvals: read(core.thinnedEvals),
      putFinish: write((_fire, jobId, f) => core.putFinish(jobId, f)),
      getFinish: read(core.getFinish),
      clearFinish: write((_fire, jobId) => core.clearFinish(jobId)),
    };

    const opsFacet: OpsStore = {
      getOpsJob: read(ops.getOpsJob),
      insertOpsJob: write((_f, j, shards, heldOut) => ops.insertOpsJob(j, shards, heldOut)),
      loadShards: read(ops.loadShards),
      loadHeldOut: read(ops.loadHeldOut),
      shardBytes: read(ops.shardBytes),
      pendingJobsOf: read(ops.pendingJobsOf),
      insertToken: write((_f, t, now) => ops.insertToken(t, now)),
      revokeToken: write((_f, id, now) => ops.revokeToken(id, now)),
      findToken: read(ops.findToken),
      listTokens: read(ops.listTokens),
      appendAudit: write((_f, e, now) => ops.appendAudit(e, now)),
      listAudit: read(ops.listAudit),
      auditRecords: read(ops.auditRecords),
      countAudit: read(ops.countAudit),
      guardrailRollbacksTo: read(ops.guardrailRollbacksTo),
    };

    const defenceFacet: DefenceStore = {
      publicKey: read(defence.publicKey),
      putPublicKey: write((_f, id, key, now) => defence.putPublicKey(id, key, now)),
      reputation: read(defence.storedReputation),
      putReputation: write((_f, id, r, now) => defence.putReputation(id, r, now)),
      usePowChallenge: write((_f, c, expiresAt, now) => defence.usePowChallenge(c, expiresAt, now)),
      addReplica: write((_f, r, network, now) => defence.addReplica(r, network, now)),
      takeOpenReplica: write((_f, jobId, volunteerId, minVersion, network) => defence.takeOpenReplica(jobId, volunteerId, minVersion, network)),
      getReplica: read(defence.getReplica),
      group: read(defence.group),
      setReplicaPayload: write((_f, taskId, payload) => defence.setReplicaPayload(taskId, payload)),
      putUsefulness: write((_f, r) => defence.putUsefulness(r)),
      getUsefulness: read(defence.getUsefulness),
      recentRelativeDrops: read(defence.recentRelativeDrops),
      usefulnessByVolunteer: read(defence.usefulnessByVolunteer),
      ...shortLived,
    };

    return {
      relay, ops: opsFacet, defence: defenceFacet,
      transaction: (fn) => (tx ? nested(tx, fn) : topLevel(fn)),
      on: (name, listener) => addListener(after, name, listener as (e: never) => void),
      onCommitting: (name, listener) => addListener(committing, name, listener as Listener<never, Stores>),
      async close() {
        if (tx) throw new StoreUsageError('close the store outside its transactions');
        outside();
        await batched?.drain();
        while (gate) await gate;
        closed = true;
        core.close();
      },
    };
  }

  return { ...facets(undefined), core, groupCommitStats: batched?.stats };
}
