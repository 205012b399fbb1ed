// LISTEN/NOTIFY between relays on one database. A store that commits a new version, a job-state change,
// a rollback, a new job or new hyperparameters sends one notification in that transaction (pg_notify is
// delivered on commit, never for a rollback); every relay's listener hears it and hands other relays'
// notices to its `remote` listeners, so dashboards, /metrics and waiting volunteers follow whichever
// relay did the work. Listeners that act on a change (audit, evaluation, guardrail) stay on the relay
// that made it: they are the store's own `on`/`onCommitting` listeners, never fed from here.
// The listener holds one connection of its own and reconnects with backoff when it drops; after a
// reconnect it reports `resync`, since notices sent meanwhile were lost.
import pg from 'pg';
import type { StoreEventName, StoreEvents } from '../types.ts';

export const CHANNEL = 'tabtrain_events';

/** What of each shared event goes on the wire (a notification carries at most 8000 bytes: no task lists). */
export const sharedEvents = {
  'job-created': (e: StoreEvents['job-created']) => ({ jobId: e.job.jobId, status: e.job.status }),
  'job-state-changed': (e: StoreEvents['job-state-changed']) => e,
  'round-committed': (e: StoreEvents['round-committed']) => ({ jobId: e.jobId, version: e.version, hash: e.hash, at: e.at, updates: e.taskIds.length }),
  'rolled-back': (e: StoreEvents['rolled-back']) => e,
  'hyperparameters-changed': (e: StoreEvents['hyperparameters-changed']) => ({ jobId: e.jobId }),
} satisfies Partial<{ [K in StoreEventName]: (e: StoreEvents[K]) => unknown }>;
export type SharedEventName = keyof typeof sharedEvents;

export type Notice = { origin: string; name: StoreEventName; event: unknown };
/** Another relay's change, as its notice carried it; or `resync` after missed notices. */
export type RemoteEvent =
  | { [K in SharedEventName]: { name: K; origin: string; event: ReturnType<(typeof sharedEvents)[K]> } }[SharedEventName]
  | { name: 'resync' };

export type EventListener = { on(fn: (e: RemoteEvent) => void): () => void; close(): Promise<void>; connected(): boolean };

type Warn = (fields: Record<string, unknown>, message: string) => void;

/** Listens on the channel; `origin`: this relay's own notices are not passed on. */
export function listenForEvents(url: string, o: { origin?: string; warn?: Warn; retryMs?: number } = {}): EventListener {
  const fns = new Set<(e: RemoteEvent) => void>();
  const emit = (e: RemoteEvent) => {
    for (const f of fns) {
      try {
        f(e);
      } catch (err) {
        o.warn?.({ err }, 'a remote-event listener failed');
      }
    }
  };
  let client: pg.Client | undefined, closed = false, up = false, timer: NodeJS.Timeout | undefined, failures = 0, everUp = false;

  const connect = async () => {
    if (closed) return;
    const c = new pg.Client({ connectionString: url, keepAlive: true, application_name: 'tabtrain-listener' });
    client = c;
    const retry = () => {
      if (closed || client !== c) return;
      up = false;
      client = undefined;
      c.end().catch(() => undefined);
      const wait = Math.min(5000, (o.retryMs ?? 250) * 2 ** Math.min(failures++, 5));
      timer = setTimeout(() => void connect(), wait);
      timer.unref();
    };
    c.on('error', (err) => { o.warn?.({ err }, 'event listener lost its database connection; reconnecting'); retry(); });
    c.on('end', retry);
    c.on('notification', (m) => {
      if (m.channel !== CHANNEL || !m.payload) return;
      let n: Notice;
      try {
        n = JSON.parse(m.payload) as Notice;
      } catch (err) {
        o.warn?.({ err, payload: m.payload }, 'unreadable store notice ignored');
        return;
      }
      if (n.origin !== o.origin && n.name in sharedEvents) emit(n as RemoteEvent);
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${CHANNEL}`);
      if (closed) { await c.end(); return; }
      up = true;
      failures = 0;
      if (everUp) emit({ name: 'resync' });
      everUp = true;
    } catch (err) {
      o.warn?.({ err }, 'event listener cannot reach the database; retrying');
      retry();
    }
  };
  void connect();

  return {
    on(fn) { fns.add(fn); return () => fns.delete(fn); },
    connected: () => up,
    async close() {
      closed = true;
      clearTimeout(timer);
      const c = client;
      client = undefined;
      await c?.end().catch(() => undefined);
    },
  };
}
