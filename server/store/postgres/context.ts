// Where a Postgres store method runs: on the pool (each call its own statement or transaction), or inside
// a transaction on one connection (`Stores.transaction`). Events (../types.ts StoreEvents) raised inside
// a transaction run their onCommitting listeners at once, with the transaction's handle, and their `on`
// listeners after the outermost COMMIT; a rollback drops them. Events other relays must hear are also
// sent with pg_notify in the same transaction, so they arrive only if it commits (./notify.ts).
import { AsyncLocalStorage } from 'node:async_hooks';
import type pg from 'pg';
import { StoreUsageError } from '../errors.ts';
import type { StoreEventName, StoreEvents, Stores } from '../types.ts';
import { CHANNEL, sharedEvents, type Notice } from './notify.ts';
import { isDatabaseUnavailable } from '../unavailable.ts';

type Warn = (fields: Record<string, unknown>, message: string) => void;
type AfterFn = (event: never) => void | Promise<void>;
type CommittingFn = (event: never, tx: Stores) => void | Promise<void>;

export type TxState = {
  client: pg.PoolClient; queued: [StoreEventName, unknown][]; handle: Stores; shared: Shared; savepoints: number;
  /** the transaction's function has settled (what runs in its context now was scheduled by it for later) */
  fnDone: boolean;
  /** committed or rolled back; `finished` resolves then */
  done: boolean; finished: Promise<void>;
};

export type Shared = {
  pool: pg.Pool;
  /** this store's id in notifications, so it can tell its own from other relays' */
  origin: string;
  after: Map<StoreEventName, Set<AfterFn>>;
  committing: Map<StoreEventName, Set<CommittingFn>>;
  warn: Warn;
  /** a Stores handle bound to a transaction */
  handleFor(tx: TxState): Stores;
  /** explicit transactions (Stores.transaction) open in this process: reads on the store itself wait for
   * them, so a read issued while one is open sees its outcome, as on the embedded store */
  open: Set<Promise<unknown>>;
  closed: boolean;
  /** checkpoint parts over this many bytes are chunk rows (./chunks.ts) */
  chunkBytes: number;
};

const inside = new AsyncLocalStorage<TxState>();

export class Ctx {
  constructor(readonly shared: Shared, readonly tx?: TxState) {}

  /** The connection to use: the transaction's, or the pool once no transaction of this process is open. */
  private async client(): Promise<pg.Pool | pg.PoolClient> {
    if (this.shared.closed) throw new StoreUsageError('the store is closed');
    if (this.tx) {
      if (this.tx.done) throw new StoreUsageError('this transaction handle is used after its transaction ended; use the store itself');
      return this.tx.client;
    }
    const open = inside.getStore();
    if (open && open.shared === this.shared && !open.done) {
      // from inside the transaction's function: on another connection it would wait for locks the
      // transaction holds, forever; work the function scheduled for later waits for it to end instead
      if (!open.fnDone) throw new StoreUsageError('the store itself is used inside one of its transactions; use the transaction\'s handle');
      await open.finished;
    }
    while (this.shared.open.size) await Promise.allSettled(this.shared.open);
    return this.shared.pool;
  }

  /** Throws where a statement on this handle would (inside one of its transactions' functions, after
   * close), and waits as one would for this process's open transactions. */
  async ready(): Promise<void> {
    await this.client();
  }

  /** Runs fn outside any transaction's async context: a batch one caller started serves others too. */
  detached<T>(fn: () => T): T {
    return inside.exit(fn);
  }

  async rows<R extends pg.QueryResultRow>(sql: string, args: unknown[] = []): Promise<R[]> {
    return (await (await this.client()).query<R>(sql, args)).rows;
  }

  async one<R extends pg.QueryResultRow>(sql: string, args: unknown[] = []): Promise<R | undefined> {
    return (await this.rows<R>(sql, args))[0];
  }

  /** A statement on its own connection from the pool, now: it neither joins nor waits for this process's
   * open transactions (state nothing else in a transaction reads, like rate-limit buckets). */
  async direct<R extends pg.QueryResultRow>(sql: string, args: unknown[] = []): Promise<R[]> {
    if (this.shared.closed) throw new StoreUsageError('the store is closed');
    return (await (this.tx ? this.tx.client : this.shared.pool).query<R>(sql, args)).rows;
  }

  /** Rows changed. */
  async run(sql: string, args: unknown[] = []): Promise<number> {
    return (await (await this.client()).query(sql, args)).rowCount ?? 0;
  }

  /** fn's statements in one transaction: this one when inside one, else a new one. */
  async atomic<T>(fn: (c: Ctx) => Promise<T>): Promise<T> {
    if (this.tx) return fn(this);
    await this.client(); // refuses use of the store inside its own transaction
    return begin(this.shared, (tx) => fn(new Ctx(this.shared, tx)));
  }

  /** Whether raising `name` needs a transaction: inside one already, or a listener or another relay must
   * see the change before it commits. Otherwise a one-statement change runs without BEGIN and COMMIT (the
   * hot path: a lease, an upload) and its `on` listeners fire after it (`raised`). */
  needsTransaction(name: StoreEventName): boolean {
    return this.tx !== undefined || (this.shared.committing.get(name)?.size ?? 0) > 0 || name in sharedEvents;
  }

  /** The `on` listeners of a one-statement change that committed on its own (see needsTransaction). */
  raised<E extends StoreEventName>(name: E, event: StoreEvents[E]): Promise<void> {
    return fireAfter(this.shared, name, event);
  }

  /** Raises an event inside the current transaction (atomic's). */
  async emit<E extends StoreEventName>(name: E, event: StoreEvents[E]): Promise<void> {
    const tx = this.tx;
    if (!tx) throw new StoreUsageError(`event ${name} raised outside a transaction`);
    for (const l of this.shared.committing.get(name) ?? []) await (l as (e: StoreEvents[E], t: Stores) => unknown)(event, tx.handle);
    tx.queued.push([name, event]);
    const shared = sharedEvents[name as keyof typeof sharedEvents];
    if (shared) {
      const notice: Notice = { origin: this.shared.origin, name, event: shared(event as never) };
      await tx.client.query('SELECT pg_notify($1, $2)', [CHANNEL, JSON.stringify(notice)]);
    }
  }

  /** A nested transaction inside this one (a savepoint), or a new one. */
  async transaction<T>(fn: (tx: Stores) => Promise<T>): Promise<T> {
    const tx = this.tx;
    if (!tx) {
      if (this.shared.closed) throw new StoreUsageError('the store is closed');
      const outer = inside.getStore();
      if (outer && outer.shared === this.shared && !outer.done && !outer.fnDone) {
        throw new StoreUsageError('a transaction is begun on the store itself inside one of its transactions; use the transaction\'s handle');
      }
      // registered before the first await: a read issued right after this call waits for the outcome
      const run = begin(this.shared, (t) => fn(t.handle));
      const open = this.shared.open;
      const mark: Promise<void> = run.then(() => undefined, () => undefined).then(() => { open.delete(mark); });
      open.add(mark);
      return run;
    }
    const name = `sp${++tx.savepoints}`;
    const queued = tx.queued.length;
    await this.run(`SAVEPOINT ${name}`);
    try {
      const out = await fn(tx.handle);
      await this.run(`RELEASE SAVEPOINT ${name}`);
      return out;
    } catch (e) {
      await tx.client.query(`ROLLBACK TO SAVEPOINT ${name}`).catch(() => undefined);
      tx.queued.length = queued;
      throw e;
    }
  }
}

async function begin<T>(shared: Shared, fn: (tx: TxState) => Promise<T>): Promise<T> {
  const client = await shared.pool.connect();
  // a checked-out connection that drops between statements reports it here, not as an uncaught error;
  // the statement that follows fails (and the relay answers 503)
  let broken: Error | undefined;
  const lost = (err: Error) => { broken = err; shared.warn({ err }, 'a database connection dropped during a transaction'); };
  client.on('error', lost);
  let finish!: () => void;
  const tx: TxState = {
    client, queued: [], handle: undefined as unknown as Stores, shared, savepoints: 0,
    fnDone: false, done: false, finished: new Promise<void>((r) => { finish = r; }),
  };
  tx.handle = shared.handleFor(tx);
  let out: T;
  try {
    await client.query('BEGIN');
    out = await inside.run(tx, () => fn(tx)).finally(() => { tx.fnDone = true; });
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    broken ??= e instanceof Error && isDatabaseUnavailable(e) ? e : undefined;
    throw e;
  } finally {
    tx.done = true;
    finish();
    client.off('error', lost);
    // a connection that failed goes, not back to the pool
    client.release(broken);
  }
  for (const [name, event] of tx.queued) await fireAfter(shared, name, event);
  return out;
}

/** Runs the `on` listeners of an event that committed, in order, each to completion, before the writing
 * call resolves (as the embedded store does); a failure is logged, never thrown, nothing undone. */
export async function fireAfter(shared: Shared, name: StoreEventName, event: unknown): Promise<void> {
  for (const l of shared.after.get(name) ?? []) {
    try {
      await (l as (e: unknown) => unknown)(event);
    } catch (err) {
      shared.warn({ err, event: name }, 'a store event listener failed; the change stands');
    }
  }
}
