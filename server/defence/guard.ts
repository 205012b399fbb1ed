// The relay's defences against untrusted volunteers, in one object the routes and the scheduler share:
// identities (public key + proof of work, rate-limited per address), upload signatures, rate limits per
// address and identity, reputation (spot checks), and every refusal counted by reason.
import { createHmac } from 'node:crypto';
import { Counter, type Registry } from 'prom-client';
import { canonicalSignature, identityId } from '../../shared/security/identity.ts';
import { verifyTaskRequestSignature, verifyUploadSignature } from './signatures.ts';
import { fromBase64Url } from '../../shared/security/encoding.ts';
import { defaultPowDifficulty, issuePowChallenge, verifyPowSolution } from '../../shared/security/pow.ts';
import { RelayError, fail } from '../errors.ts';
import { checkLimit, RefusalCounter, type RateLimitOptions } from './rate-limit.ts';
import { networkOf } from './network.ts';
import { defaultPolicy, mayReceiveWork, recordOutcome, replicationRate, type ReplicationPolicy, type SpotCheckOutcome, type VolunteerRecord } from './replication.ts';
import { newVolunteerRecord } from './replication.ts';
import type { DefenceStore } from '../store/defence-types.ts';
import type { NormHistoryOptions } from './validate.ts';

export type DefenceOptions = {
  /** 'required' (default): volunteers register a public key with a solved proof of work and sign every
   * upload. 'optional': key-less registration and unsigned uploads are also taken (trusted deployments). */
  identity?: 'required' | 'optional';
  /** leading zero bits of the registration proof of work (default 16, ~65k hashes) */
  powDifficulty?: number;
  /** spot-check policy (share of tasks replicated, reputation thresholds) */
  replication?: Partial<ReplicationPolicy>;
  /** relative L2 distance two copies of one task may differ by */
  spotCheckTolerance?: number;
  /** norm bound = factor × the median norm of the job's last `history` (64) accepted updates (default 3), once
   * minCount (3) are known, never above the prior from the job's settings (./validate.ts jobNormBound) */
  normBound?: NormHistoryOptions;
  limits?: Partial<Record<LimitName, RateLimitOptions>>;
};

export type LimitName = 'registerPerAddress' | 'tasksPerAddress' | 'tasksPerIdentity' | 'uploadsPerAddress' | 'uploadsPerIdentity';

/** How far a task request's time may be from the relay's clock, either way. */
export const REQUEST_SKEW_MS = 60_000;
/** How often a relay forgets ended replay windows and refilled buckets (each relay of a network does). */
const PRUNE_EVERY_MS = 60_000;

/** Generous for a lab or a classroom behind one NAT, tight enough that one address cannot flood. */
export const defaultLimits: Record<LimitName, RateLimitOptions> = {
  registerPerAddress: { capacity: 30, refillPerSecond: 0.2 },
  tasksPerAddress: { capacity: 600, refillPerSecond: 200 },
  tasksPerIdentity: { capacity: 40, refillPerSecond: 10 },
  uploadsPerAddress: { capacity: 400, refillPerSecond: 100 },
  uploadsPerIdentity: { capacity: 20, refillPerSecond: 5 },
};

/** `defence`: the defence's state (server/store), rate-limit buckets and recently seen task-request
 * signatures included: relays sharing a database share them, so a volunteer spread over several relays
 * gets one relay's rate and cannot replay a signed request at another. */
export function createGuard(defence: DefenceStore, secret: Buffer, registry: Registry, o: DefenceOptions = {}) {
  /** The defence store, with a volunteer never judged read as a new record. */
  const store = {
    ...defence,
    reputation: async (volunteerId: string): Promise<VolunteerRecord> => (await defence.reputation(volunteerId)) ?? newVolunteerRecord(),
  };
  /** Registered keys, by volunteer id: an id is the hash of its key (shared/security/identity.ts), so the
   * key stored for an id never changes and a cached one is never stale; every upload and task request
   * reads one, a database round trip each on a shared store. Ids without a key are not cached (they may
   * register later). Oldest out first. */
  const keys = new Map<string, string>();
  const KEYS_MAX = 65_536;
  async function publicKey(volunteerId: string): Promise<string | undefined> {
    const cached = keys.get(volunteerId);
    if (cached !== undefined) return cached;
    const key = await defence.publicKey(volunteerId);
    if (key !== undefined) {
      if (keys.size >= KEYS_MAX) keys.delete(keys.keys().next().value!);
      keys.set(volunteerId, key);
    }
    return key;
  }
  const required = (o.identity ?? 'required') === 'required';
  const difficulty = o.powDifficulty ?? defaultPowDifficulty;
  const policy: ReplicationPolicy = { ...defaultPolicy, ...o.replication };
  // a key of its own for PoW challenges, so a challenge can never pass as a lease and back
  const powSecret = createHmac('sha256', secret).update('tabtrain-pow-v1').digest();
  const limits = Object.fromEntries((Object.keys(defaultLimits) as LimitName[]).map((k) => [k, { ...defaultLimits[k], ...o.limits?.[k] }])) as Record<LimitName, RateLimitOptions>;
  for (const l of Object.values(limits)) checkLimit(l);
  // a bucket untouched this long is full again under any of the limits: forgetting it changes nothing
  const fillMs = Math.max(...Object.values(limits).map((l) => (1000 * l.capacity) / l.refillPerSecond));
  let prunedAt = -Infinity;
  const counter = new RefusalCounter();
  const rejected = new Counter({ name: 'tabtrain_updates_rejected_total', help: 'volunteer requests refused, by reason (error code)', labelNames: ['reason'], registers: [registry] });
  const spotChecks = new Counter({ name: 'tabtrain_spot_checks_total', help: 'spot checks compared, by outcome', labelNames: ['outcome'], registers: [registry] });

  /** Forgets ended replay windows and full buckets, at most once a minute, beside the request that
   * noticed (a failure, the database away, only leaves them for the next minute). */
  function pruneNow(now: number): void {
    if (now - prunedAt < PRUNE_EVERY_MS) return;
    prunedAt = now;
    defence.pruneShortLived(now, now - fillMs).catch(() => undefined);
  }

  /** Throws 429 TT_ERR_RATE_LIMITED (the route turns retryAfter into a Retry-After header). */
  async function limit(name: LimitName, key: string, now: number): Promise<void> {
    pruneNow(now);
    const d = await defence.takeTokens(`${name}:${key}`, limits[name], now);
    if (!d.ok) throw Object.assign(new RelayError('TT_ERR_RATE_LIMITED', `${name} limit reached; retry after ${d.retryAfterSeconds} s`), { retryAfterSeconds: d.retryAfterSeconds });
  }

  async function challenge(now: number): Promise<{ challenge: string; difficulty: number }> {
    return { challenge: await issuePowChallenge(powSecret, now, difficulty), difficulty };
  }

  /** Checks key + proof of work and returns the volunteer id the key derives to; undefined = key-less (optional mode). */
  async function admitIdentity(body: { publicKey?: string; challenge?: string; nonce?: string }, now: number): Promise<{ volunteerId: string; publicKey: string } | undefined> {
    if (body.publicKey === undefined) {
      if (required) fail('TT_ERR_IDENTITY_REQUIRED', 'field "publicKey" is missing: send your ECDSA P-256 public key (base64url raw point) with a solved "challenge" and "nonce" from GET /api/volunteers/challenge');
      return undefined;
    }
    const raw = fromBase64Url(body.publicKey);
    if (!raw || raw.length !== 65 || raw[0] !== 4) fail('TT_ERR_IDENTITY_REQUIRED', 'field "publicKey" must be a base64url uncompressed P-256 point (65 bytes)');
    if (typeof body.challenge !== 'string' || typeof body.nonce !== 'string') fail('TT_ERR_POW', 'fields "challenge" and "nonce" are required: get a challenge from GET /api/volunteers/challenge and solve it');
    const check = await verifyPowSolution(powSecret, body.challenge!, body.nonce!, now);
    if (!check.ok) fail('TT_ERR_POW', `${check.code}: ${check.message}`);
    else if (!(await store.usePowChallenge(body.challenge!, check.claims.expiresAt, now))) fail('TT_ERR_POW', 'this challenge was already used to register; get a new one');
    try {
      await crypto.subtle.importKey('raw', raw as Uint8Array<ArrayBuffer>, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
    } catch {
      fail('TT_ERR_IDENTITY_REQUIRED', 'field "publicKey" is not a point on P-256');
    }
    const volunteerId = await identityId(raw!);
    await store.putPublicKey(volunteerId, body.publicKey, now);
    return { volunteerId, publicKey: body.publicKey };
  }

  /** Verifies the upload's signature against the volunteer's registered key. */
  async function verifyUpload(volunteerId: string, signature: string | undefined, taskId: string, lease: string, bodySha256Hex: string): Promise<void> {
    const key = await publicKey(volunteerId);
    if (!key) {
      if (required) fail('TT_ERR_SIGNATURE', `volunteer ${volunteerId} has no registered key; register with a public key and sign uploads`);
      return; // a key-less volunteer of an 'optional' relay
    }
    if (!signature) fail('TT_ERR_SIGNATURE', 'header "x-tabtrain-signature" is missing: sign the upload with your volunteer key');
    const r = await verifyUploadSignature(key, signature!, taskId, lease, bodySha256Hex);
    if (!r.ok) fail('TT_ERR_SIGNATURE', `${r.code}: ${r.message}`);
  }

  /** A task request must be signed by the volunteer it names, at a time within REQUEST_SKEW_MS of the
   * relay's clock (the relay sends its clock in x-tabtrain-time, so a tab with a wrong clock corrects it),
   * and not seen before (by any relay of the network). Volunteers without a key (an 'optional' relay, or
   * unknown ids) are left to the checks that follow. */
  async function verifyTaskRequest(volunteerId: string, jobId: string, signature: string | undefined, at: string | undefined, now: number): Promise<void> {
    const key = await publicKey(volunteerId);
    if (!key) return;
    if (!signature || !at) fail('TT_ERR_REQUEST_SIGNATURE', 'headers "x-tabtrain-signature" and "x-tabtrain-time" are missing: sign the task request with your volunteer key');
    const t = Number(at);
    if (!Number.isSafeInteger(t) || Math.abs(now - t) > REQUEST_SKEW_MS) {
      fail('TT_ERR_REQUEST_TIME', `x-tabtrain-time ${JSON.stringify(at)} is not within ${REQUEST_SKEW_MS / 1000} s of the relay's clock (${now}, also in this answer's x-tabtrain-time); sign again with that time`);
    }
    const r = await verifyTaskRequestSignature(key, signature!, jobId, volunteerId, t);
    if (!r.ok) fail('TT_ERR_REQUEST_SIGNATURE', `${r.code}: ${r.message}`);
    const seen = canonicalSignature(signature!) ?? signature!; // (r, n − s) is the same signature as (r, s)
    // good once on the whole network: the window is in the store every relay shares
    if (!(await defence.useRequestSignature(seen, now + 2 * REQUEST_SKEW_MS, now))) fail('TT_ERR_REQUEST_SIGNATURE', 'this signed request was already used; sign each task request anew');
  }

  async function requireWork(volunteerId: string): Promise<VolunteerRecord> {
    const r = await store.reputation(volunteerId);
    if (!mayReceiveWork(r)) fail('TT_ERR_VOLUNTEER_BANNED', `volunteer ${volunteerId} failed too many spot checks and gets no more work`);
    return r;
  }

  /** `tx`: a transaction's defence store to record it in (default: its own). */
  async function outcome(volunteerId: string, what: SpotCheckOutcome, now: number, tx: DefenceStore = defence): Promise<VolunteerRecord> {
    const next = recordOutcome((await tx.reputation(volunteerId)) ?? newVolunteerRecord(), what, policy);
    await tx.putReputation(volunteerId, next, now);
    return next;
  }

  return {
    store, policy, required, limit, challenge, admitIdentity, verifyUpload, verifyTaskRequest, requireWork, outcome,
    replicationRate: (r: VolunteerRecord) => replicationRate(r, policy),
    /** The network spot checks pair across, for a request's address ('' when the policy ignores networks). */
    networkFor: (address: string | undefined): string => (policy.distinctNetworks && address ? networkOf(address) : ''),
    tolerance: o.spotCheckTolerance,
    normBound: o.normBound ?? {},
    spotChecked: (agree: boolean) => spotChecks.inc({ outcome: agree ? 'agree' : 'disagree' }),
    refused(reason: string): void {
      counter.add(reason);
      rejected.inc({ reason });
    },
    /** Refusals by reason since start, for the dashboard. */
    refusals: () => counter.snapshot(),
  };
}
export type Guard = ReturnType<typeof createGuard>;
