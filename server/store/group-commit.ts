// Group commit: writes that arrive together share one transaction, so a burst of uploads pays one COMMIT
// (one WAL append on SQLite, one WAL flush on Postgres) instead of one each. A caller's promise settles only
// after the batch it joined committed or failed, so nothing is acknowledged before it is durable:
// - the batch's `flush` reports each item's own outcome: an item that fails alone (its savepoint rolled
//   back) is refused with its own error while the others commit;
// - when the transaction as a whole fails (COMMIT refused, connection lost, a relay killed mid-way),
//   nothing of it was stored and every item of it is refused with that error: none was acknowledged.
// Items wait at most `waitMs` for company (0: until the current turn of the event loop ends), and never
// more than `maxItems` go in one batch; while `concurrency` batches are committing, new items queue for
// the next one, which is what gathers a burst when commits are slow.

export type GroupCommitOptions = {
  /** most items in one transaction (default 64) */
  maxItems?: number;
  /** how long the first item of a batch waits for others, ms (default 0: the rest of this event-loop turn) */
  waitMs?: number;
  /** batches committing at once (default 1; a pool of connections may take more) */
  concurrency?: number;
};

/** One item's outcome within a batch that committed. */
export type ItemOutcome<R> = { ok: true; value: R } | { ok: false; error: unknown };

type Waiting<I, R> = { item: I; resolve: (r: R) => void; reject: (e: unknown) => void };

export type GroupCommit<I, R> = {
  /** Resolves once the item's batch committed; rejects with the item's own error or the batch's. */
  submit(item: I): Promise<R>;
  /** Resolves when every item submitted so far has settled. */
  drain(): Promise<void>;
  /** Batches flushed and items in them so far: how much sharing there was. */
  stats(): { batches: number; items: number };
};

export function groupCommit<I, R>(flush: (items: I[]) => Promise<ItemOutcome<R>[]>, o: GroupCommitOptions = {}): GroupCommit<I, R> {
  const maxItems = Math.max(1, o.maxItems ?? 64);
  const waitMs = Math.max(0, o.waitMs ?? 0);
  const concurrency = Math.max(1, o.concurrency ?? 1);
  let queue: Waiting<I, R>[] = [];
  let running = 0;
  let batches = 0, items = 0;
  let timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  const idle = new Set<() => void>();

  const clearTimer = () => {
    if (timer === undefined) return;
    if (waitMs > 0) clearTimeout(timer as NodeJS.Timeout); else clearImmediate(timer as NodeJS.Immediate);
    timer = undefined;
  };

  /** Starts batches while there are items and room; arms the wait for a batch that is not full yet. */
  function pump(timeUp: boolean): void {
    while (running < concurrency && queue.length && (timeUp || queue.length >= maxItems)) {
      clearTimer();
      const batch = queue.slice(0, maxItems);
      queue = queue.slice(batch.length);
      running++;
      batches++; items += batch.length;
      void run(batch);
    }
    if (queue.length && timer === undefined && running < concurrency) {
      timer = waitMs > 0 ? setTimeout(() => { timer = undefined; pump(true); }, waitMs) : setImmediate(() => { timer = undefined; pump(true); });
    }
  }

  async function run(batch: Waiting<I, R>[]): Promise<void> {
    try {
      const outcomes = await flush(batch.map((w) => w.item));
      batch.forEach((w, i) => {
        const r = outcomes[i];
        if (!r) w.reject(new Error(`group commit: the batch reported no outcome for item ${i}`));
        else if (r.ok) w.resolve(r.value);
        else w.reject(r.error);
      });
    } catch (e) {
      for (const w of batch) w.reject(e); // the transaction failed: none of it is stored
    } finally {
      running--;
      // what queued while this batch committed goes now: it has waited at least one commit already
      if (queue.length) pump(true);
      else if (running === 0) for (const f of [...idle]) f();
    }
  }

  return {
    submit(item) {
      return new Promise<R>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        pump(false);
      });
    },
    stats: () => ({ batches, items }),
    drain() {
      if (!queue.length && running === 0) return Promise.resolve();
      return new Promise<void>((r) => { const f = () => { idle.delete(f); r(); }; idle.add(f); });
    },
  };
}
