// Tabs of one browser share one IndexedDB, but each needs its own residual and task in progress.
// A tab holds a numbered slot (a Web Lock) for as long as its worker lives; its records are keyed by the
// slot. A reloaded tab asks for its old slot first (the page remembers it in sessionStorage) and a tab
// opened after one was closed adopts the free slot, so no residual is ever orphaned.
const SLOTS = 64;
/** How long a reloaded tab waits for its old slot while the previous worker is still being torn down. */
const REACQUIRE_WAIT_MS = 3000;

type Locks = { request(name: string, opts: { ifAvailable?: boolean; signal?: AbortSignal }, cb: (lock: unknown) => Promise<void>): Promise<void> };

/** Holds a slot until `release` resolves; returns its number. Without Web Locks, uses `preferred` (or 0). */
export async function acquireSlot(preferred: number | undefined, release: Promise<void>): Promise<number> {
  const locks = (globalThis.navigator as { locks?: Locks } | undefined)?.locks;
  if (!locks) return preferred ?? 0;
  const hold = (name: string, opts: { ifAvailable?: boolean; signal?: AbortSignal }) =>
    new Promise<boolean>((resolve, reject) => {
      locks.request(name, opts, async (lock) => {
        resolve(lock !== null);
        if (lock !== null) await release;
      }).catch(reject);
    });
  if (preferred !== undefined) {
    const ok = await hold(`tabtrain-slot-${preferred}`, { signal: AbortSignal.timeout(REACQUIRE_WAIT_MS) }).catch(() => false);
    if (ok) return preferred;
  }
  for (let s = 0; s < SLOTS; s++) if (await hold(`tabtrain-slot-${s}`, { ifAvailable: true })) return s;
  throw new Error(`more than ${SLOTS} Tabtrain tabs are open in this browser; close one to start this one`);
}
