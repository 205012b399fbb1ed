// Signature checks on the relay, with Node's own crypto rather than WebCrypto: the same ECDSA P-256 /
// SHA-256 check over the same bytes (shared/security/identity.ts says what each signature covers), with
// the same refusals, but cheaper for the event loop. crypto.verify with a callback runs the curve
// arithmetic on the libuv thread pool, as crypto.subtle.verify does, without WebCrypto's per-call
// algorithm normalisation and promise plumbing: measured on the relay's 2-core machine, about 10–18 µs of
// the event loop's thread per verify against 22–32 µs through crypto.subtle, for the same process CPU
// (~85–110 µs, the P-256 arithmetic itself); a synchronous verify would cost the event loop all ~85 µs.
import { createPublicKey, KeyObject, verify } from 'node:crypto';
import { taskRequestSigningBytes, updateSigningBytesFor, type VerifyResult } from '../../shared/security/identity.ts';

/** DER prefix of a P-256 SubjectPublicKeyInfo holding an uncompressed point (RFC 5480): the raw 65-byte
 * point appended to it is the SPKI that createPublicKey reads. */
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');

/** Keys already parsed, by their base64url point: parsing costs about as much as a verify, and a relay
 * checks the same few thousand volunteers' keys over and over. Oldest out first. */
const keys = new Map<string, KeyObject>();
const KEYS_MAX = 4096;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** base64url to bytes; null for anything that is not the canonical spelling of some bytes (as
 * shared/security/encoding.ts fromBase64Url: one token, one accepted spelling). */
function decode(s: string): Buffer | null {
  if (typeof s !== 'string' || !BASE64URL.test(s) || s.length % 4 === 1) return null;
  const b = Buffer.from(s, 'base64url');
  return b.toString('base64url') === s ? b : null;
}

function keyOf(publicKey: string): KeyObject | VerifyResult {
  const cached = keys.get(publicKey);
  if (cached) return cached;
  const raw = decode(publicKey);
  if (!raw || raw.length !== 65 || raw[0] !== 4) return { ok: false, code: 'BAD_PUBLIC_KEY', message: 'public key must be a base64url uncompressed P-256 point (65 bytes)' };
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.concat([P256_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
  } catch {
    return { ok: false, code: 'BAD_PUBLIC_KEY', message: 'public key is not a point on P-256' };
  }
  if (keys.size >= KEYS_MAX) keys.delete(keys.keys().next().value!);
  keys.set(publicKey, key);
  return key;
}

/** Checks a base64url IEEE P1363 (r‖s) signature against a base64url raw P-256 public key, off the event
 * loop. Never throws: malformed keys or signatures come back as a refusal saying which. */
export function verifySignature(publicKey: string, signature: string, message: Uint8Array): Promise<VerifyResult> {
  const key = keyOf(publicKey);
  if (!(key instanceof KeyObject)) return Promise.resolve(key);
  const sig = decode(signature);
  if (!sig || sig.length !== 64) return Promise.resolve({ ok: false, code: 'BAD_SIGNATURE_FORMAT', message: 'signature must be base64url of 64 bytes (ECDSA P-256, r‖s)' });
  return new Promise((resolve) => {
    verify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, sig, (err, ok) => {
      resolve(!err && ok ? { ok: true } : { ok: false, code: 'WRONG_SIGNATURE', message: 'signature does not match this volunteer\'s key and the uploaded bytes' });
    });
  });
}

/** An upload's signature, its payload already hashed (SHA-256 hex). */
export const verifyUploadSignature = (publicKey: string, signature: string, taskId: string, lease: string, payloadSha256Hex: string): Promise<VerifyResult> =>
  verifySignature(publicKey, signature, updateSigningBytesFor(taskId, lease, payloadSha256Hex));

/** A task request's signature. */
export const verifyTaskRequestSignature = (publicKey: string, signature: string, jobId: string, volunteerId: string, at: number): Promise<VerifyResult> =>
  verifySignature(publicKey, signature, taskRequestSigningBytes(jobId, volunteerId, at));
