// Whether a store failure means "the database is not there now" (down, restarting, unreachable, out of
// connections) rather than a fault in the request or the relay: the relay answers those 503
// TT_ERR_DATABASE_UNAVAILABLE and recovers by itself once the database answers again.

/** What connection errors look like: the server is down, restarting, unreachable or out of connections.
 * Such a failure says nothing about the request, so the relay answers 503 and the client retries. */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE', 'EAI_AGAIN'].includes(code)) return true;
    // SQLSTATE classes 08 (connection exception), 57P0x (shutdown, crash, cannot connect now), 53300 (too many connections)
    if (code.startsWith('08') || /^57P0[1-4]$/.test(code) || code === '53300') return true;
  }
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Connection terminated unexpectedly/i.test(err.message);
}

/** What a client is told (the error itself, with hosts and ports, goes to the relay's log only). */
export const DATABASE_DOWN = 'it is down, restarting or out of connections';

/** Runs `fn` again while it fails only because the database is unavailable, backing off up to 5 s, for
 * at most `waitMs`: a relay starting while its database restarts, or on a machine so busy that a
 * connection misses its 2 s deadline, waits for it instead of exiting. Other failures throw at once. */
export async function whenAvailable<T>(fn: () => Promise<T>, o: { waitMs?: number; warn?: (fields: Record<string, unknown>, message: string) => void; what: string }): Promise<T> {
  const until = Date.now() + (o.waitMs ?? 60_000);
  for (let delay = 250; ; delay = Math.min(5_000, delay * 2)) {
    try {
      return await fn();
    } catch (err) {
      if (!isDatabaseUnavailable(err) || Date.now() + delay > until) throw err;
      o.warn?.({ err }, `${o.what}: the database is unavailable (${DATABASE_DOWN}); trying again in ${delay} ms`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
