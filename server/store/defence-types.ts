// The defence's state behind an asynchronous interface (see ./types.ts for the contract's conventions):
// volunteer public keys, reputation records, used proof-of-work challenges, spot-check pairs and
// usefulness scores. Implemented for SQLite in server/defence/store.ts.
import type { VolunteerRecord } from '../defence/replication.ts';
import type { RateDecision } from '../defence/rate-limit.ts';

export type ReplicaRow = {
  taskId: string; jobId: string; groupId: string; volunteerId: string; baseVersion: number; shard: number; seed: number;
  payload: Uint8Array | null; open: boolean;
};
export type UsefulnessRow = {
  taskId: string; jobId: string; volunteerId: string; baseVersion: number;
  before: number; after: number; drop: number; refused: boolean; at: number;
};
/** One volunteer's usefulness on a job: uploads scored, their mean loss drop (null if none is finite), how many were refused. */
export type VolunteerUsefulness = { scored: number; meanDrop: number | null; notUseful: number };

export interface DefenceStore {
  publicKey(volunteerId: string): Promise<string | undefined>;
  /** First key wins: a second one for the same id is ignored. */
  putPublicKey(volunteerId: string, key: string, now: number): Promise<void>;
  /** The stored record, or undefined for a volunteer never judged. */
  reputation(volunteerId: string): Promise<VolunteerRecord | undefined>;
  putReputation(volunteerId: string, r: VolunteerRecord, now: number): Promise<void>;
  /** True the first time a challenge is used (atomic: of concurrent users exactly one gets true). */
  usePowChallenge(challenge: string, expiresAt: number, now: number): Promise<boolean>;
  addReplica(r: Omit<ReplicaRow, 'payload'>, network: string, now: number): Promise<void>;
  /** Claims the oldest open spot check another volunteer may take (atomic claim: one taker each). */
  takeOpenReplica(jobId: string, volunteerId: string, minVersion: number, network?: string): Promise<ReplicaRow | undefined>;
  getReplica(taskId: string): Promise<ReplicaRow | undefined>;
  group(groupId: string): Promise<ReplicaRow[]>;
  setReplicaPayload(taskId: string, payload: Uint8Array): Promise<void>;
  putUsefulness(r: UsefulnessRow): Promise<void>;
  getUsefulness(taskId: string): Promise<UsefulnessRow | undefined>;
  /** The job's last `limit` accepted usefulness scores as relative drops (drop ÷ loss before), newest first. */
  recentRelativeDrops(jobId: string, limit: number): Promise<number[]>;
  usefulnessByVolunteer(jobId: string): Promise<Map<string, VolunteerUsefulness>>;

  // Short-lived state that must hold for the whole network, not per relay: rate-limit buckets and the
  // replay window of signed task requests. One statement each on a shared database (every request pays
  // it); kept in process by the embedded store, whose one file serves one relay.
  /** Takes `cost` tokens (default 1) from `bucket`, a token bucket of `limit` refilled up to `now`:
   * atomic, so concurrent takes on any relays never spend a token twice. */
  takeTokens(bucket: string, limit: { capacity: number; refillPerSecond: number }, now: number, cost?: number): Promise<RateDecision>;
  /** True the first time a signature is used (atomic, like usePowChallenge); remembered until `until`. */
  useRequestSignature(signature: string, until: number, now: number): Promise<boolean>;
  /** Forgets signatures whose window ended by `now`, and buckets untouched since `idleSince` (full again
   * by then, as if never used). */
  pruneShortLived(now: number, idleSince: number): Promise<void>;
}
