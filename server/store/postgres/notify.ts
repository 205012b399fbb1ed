// LISTEN/NOTIFY between relays on one database: a store that commits a new version or changes a job's
// state sends one notification with its transaction (pg_notify is delivered on commit, never for a
// rollback); every relay's listener hears it — its own too — and fires the same events it would for a
// local change, so dashboards, /metrics and waiting volunteers agree whichever relay did the work.
// The listener holds one connection of its own and reconnects (with backoff) when it drops; after a
// reconnect it reports `resync`, since notifications sent meanwhile were lost.
import pg from 'pg';

export const CHANNEL = 'tabtrain_events';

export type StoreEvent =
  | { kind: 'version'; jobId: string; version: number; hash: string }
  | { kind: 'job'; jobId: string; status: string; version: number; rollback?: boolean }
  /** the listener was disconnected: events may have been missed, re-read what matters */
  | { kind: 'resync' };

export type Listener = { on(fn: (e: StoreEvent) => void): () => void; close(): Promise<void>; connected(): boolean };

export function listenForEvents(url: string, o: { warn?: (fields: Record<string, unknown>, message: string) => void; retryMs?: number } = {}): Listener {
  const fns = new Set<(e: StoreEvent) => void>();
  const emit = (e: StoreEvent) => { for (const f of fns) f(e); };
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
      try {
        emit(JSON.parse(m.payload) as StoreEvent);
      } catch (err) {
        o.warn?.({ err, payload: m.payload }, 'unreadable store event ignored');
      }
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${CHANNEL}`);
      if (closed) { await c.end(); return; }
      up = true;
      failures = 0;
      if (everUp) emit({ kind: 'resync' });
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
