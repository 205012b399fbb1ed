// Lease tokens: base64url(JSON claims) + "." + base64url(HMAC-SHA256(claims)). The relay signs them with
// a secret kept in the data directory, so leases survive a restart and cannot be forged or altered.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RelayError } from '../errors.ts';

/** `steps`: the task's H when it is sized to its volunteer (swarm jobs); absent: the job's own H. */
export type LeaseClaims = { taskId: string; jobId: string; baseVersion: number; shard: number; seed: number; volunteerId: string; expiresAt: number; steps?: number };

/** Reads the secret from dataDir/lease.secret, creating it (0600) on first start. */
export function loadLeaseSecret(dataDir: string): Buffer {
  const file = join(dataDir, 'lease.secret');
  if (!existsSync(file)) writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
  return Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
}

export function signLease(secret: Buffer, c: LeaseClaims): string {
  const body = Buffer.from(JSON.stringify(c)).toString('base64url');
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

/** Checks the signature and shape; expiry and use are the scheduler's business (it knows the task). */
export function verifyLease(secret: Buffer, token: string): LeaseClaims {
  const dot = token.indexOf('.');
  if (dot <= 0) throw new RelayError('TT_ERR_LEASE_INVALID', 'it is not of the form claims.signature');
  const body = token.slice(0, dot);
  // compared as text: base64url decoding ignores the last character's unused low bits, so a lease with
  // that character changed decoded to the same MAC and passed (a forged-lease test, about 1 run in 16)
  const sig = Buffer.from(token.slice(dot + 1));
  const want = Buffer.from(createHmac('sha256', secret).update(body).digest('base64url'));
  if (sig.length !== want.length || !timingSafeEqual(sig, want)) throw new RelayError('TT_ERR_LEASE_INVALID', 'its signature does not match');
  let c: LeaseClaims;
  try {
    c = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as LeaseClaims;
  } catch {
    throw new RelayError('TT_ERR_LEASE_INVALID', 'its claims are not JSON');
  }
  return c;
}
