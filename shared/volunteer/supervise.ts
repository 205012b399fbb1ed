// A volunteer never gives up on its relay: the loop's client retries each request with backoff and
// jitter, and if the loop itself stops on an error it is started again, after a growing, jittered pause,
// from its saved state. Used by the tab's worker and the Node volunteer.
import { RelayHttpError } from './client.ts';

/** Retry policy handed to the loop: backoff with full jitter up to 8 s, and no limit on tries. */
export const NEVER_GIVE_UP = { baseMs: 250, maxMs: 8_000, attempts: Number.MAX_SAFE_INTEGER };
const RESTART_MAX_MS = 30_000;

/** Errors no restart can mend: this client and its relay speak protocols the other does not serve. The
 * person has to act (reload the page, update the command line), so the host shows the relay's message. */
export const isFatal = (err: unknown): err is RelayHttpError =>
  err instanceof RelayHttpError && (err.code === 'TT_ERR_CLIENT_TOO_OLD' || err.code === 'TT_ERR_RELAY_TOO_OLD');

/** Runs runOnce until it returns, restarting it after an error; a fatal error (isFatal) is thrown. */
export async function supervise(runOnce: () => Promise<void>, signal: AbortSignal, onRestart: (err: Error, waitMs: number) => void): Promise<void> {
  for (let restart = 0; !signal.aborted; restart++) {
    try {
      await runOnce();
      return;
    } catch (err) {
      if (signal.aborted) return;
      if (isFatal(err)) throw err;
      const waitMs = Math.min(RESTART_MAX_MS, 1000 * 2 ** Math.min(restart, 5)) * (0.5 + Math.random() / 2);
      onRestart(err as Error, waitMs);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, waitMs);
        signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
      });
    }
  }
}
