// The audit log's hash chain: each entry commits to the one before, so storage computes an entry's hash
// as it appends it (atomically with reading the previous head) and the operator tools recompute it.
import { createHash } from 'node:crypto';

export const GENESIS_HASH = '0'.repeat(64);

export function entryHash(e: { seq: number; at: number; actor: string; action: string; jobId: string | null; detailText: string; prevHash: string }): string {
  const canonical = JSON.stringify([e.seq, e.at, e.actor, e.action, e.jobId, e.detailText, e.prevHash]);
  return createHash('sha256').update(canonical).digest('hex');
}
