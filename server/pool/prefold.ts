// Updates decoded as they arrive, on the round lane's thread, so a large model's round close folds what is
// already decoded instead of reading and decoding every payload then (at 124M parameters about 2.5 s of
// a close per int8 update, most of it first touches of a new 0.5 GB array). The issue's "fold each update
// when it arrives": with a round of K ≤ buckets updates, folding is keeping the decoded update.
//
// A cache, never the truth: the store still holds every pending update, and a close whose update is not
// here (this thread restarted, the entry was evicted or aged out, an update accepted by another relay)
// reads and decodes it from the store as before. An entry is taken (removed) by the close that folds it,
// so a close that fails mid-way reads its updates afresh on the next attempt. Held in this thread's
// memory: the round lane has one thread (./index.ts), which every round close and prefold runs on.
import { decodeUpdate } from '../../shared/codec/index.ts';
import type { RoundInputs } from '../store/round-inputs.ts';

/** Below this many parameters a close decodes its updates itself: milliseconds each. */
export const PREFOLD_MIN_PARAMS = 1_000_000;
/** Decoded bytes held at most: four 124M updates (a round's K = 4 of the largest model the relay takes). */
const MAX_BYTES = 2.2e9;
/** An entry no close took within this long is dropped (its update was discarded or applied elsewhere). */
const MAX_AGE_MS = 30 * 60_000;

type Entry = { values: Float32Array; at: number };
/** by database and task id, oldest first */
const held = new Map<string, Entry>();
let bytes = 0;
const keyOf = (db: string, taskId: string) => `${db}\n${taskId}`;

function drop(key: string): Entry | undefined {
  const e = held.get(key);
  if (e) { held.delete(key); bytes -= e.values.byteLength; }
  return e;
}

function evict(now: number, room: number): void {
  for (const [key, e] of held) {
    if (bytes + room <= MAX_BYTES && now - e.at <= MAX_AGE_MS) break;
    drop(key);
  }
}

/** Decodes a pending update and holds it for its round's close. False when there is nothing to hold: the
 * update is no longer pending, its payload is gone, or it decodes sparse (top-k: small, decoded at the close). */
export async function prefold(db: string, taskId: string, length: number, inputs: RoundInputs, now = Date.now()): Promise<boolean> {
  const key = keyOf(db, taskId);
  if (held.has(key)) return true;
  evict(now, 4 * length);
  if (bytes + 4 * length > MAX_BYTES) return false;
  const u = await inputs.pending(taskId);
  if (u === undefined || u === 'lost') return false;
  const x = decodeUpdate(u.payload, length);
  if (x.kind !== 'dense') return false;
  held.set(key, { values: x.values, at: now });
  bytes += x.values.byteLength;
  return true;
}

/** The decoded values of a pending update, removed from the cache; undefined when not held. */
export function takePrefolded(db: string, taskId: string, length: number): Float32Array | undefined {
  const e = drop(keyOf(db, taskId));
  return e && e.values.length === length ? e.values : undefined;
}
