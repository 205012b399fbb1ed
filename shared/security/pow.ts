// Proof of work for creating an identity, so that minting many Sybil identities costs CPU time:
// find a nonce such that SHA-256(challenge ":" nonce) starts with `difficulty` zero bits (about 2^d
// hashes; d = 16 is ~65k hashes, a second or two in a tab). The relay issues challenges as HMAC-signed
// tokens with an expiry, so it keeps no state until a solution comes back (it must still remember
// used challenges until they expire, to stop one solution minting many identities).
import { fromBase64Url, sha256, toBase64Url, utf8 } from './encoding.ts';

export const defaultPowDifficulty = 16;

export function leadingZeroBits(h: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < h.length; i++) {
    if (h[i] === 0) { n += 8; continue; }
    return n + Math.clz32(h[i]) - 24;
  }
  return n;
}

export async function powHashBits(challenge: string, nonce: string): Promise<number> {
  return leadingZeroBits(await sha256(utf8(`${challenge}:${nonce}`)));
}

/** Finds a nonce (decimal string). Throws after maxTries so a bad difficulty cannot hang a tab. */
export async function solvePow(challenge: string, difficulty: number, maxTries = 2 ** 26): Promise<string> {
  for (let i = 0; i < maxTries; i++) {
    const nonce = i.toString(36);
    if ((await powHashBits(challenge, nonce)) >= difficulty) return nonce;
  }
  throw new Error(`no proof-of-work solution within ${maxTries} tries at difficulty ${difficulty}`);
}

export type PowClaims = { difficulty: number; expiresAt: number; salt: string };
export type PowCheck = { ok: true; claims: PowClaims } | { ok: false; code: 'POW_INVALID' | 'POW_EXPIRED' | 'POW_INSUFFICIENT'; message: string };

async function hmacKey(secret: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', secret as Uint8Array<ArrayBuffer>, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
}

/** Relay side: a signed challenge "claims.mac" valid until nowMs + ttlMs. */
export async function issuePowChallenge(secret: Uint8Array, nowMs: number, difficulty = defaultPowDifficulty, ttlMs = 10 * 60_000): Promise<string> {
  const salt = toBase64Url(crypto.getRandomValues(new Uint8Array(12)));
  const body = toBase64Url(utf8(JSON.stringify({ difficulty, expiresAt: nowMs + ttlMs, salt } satisfies PowClaims)));
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', await hmacKey(secret), utf8(body) as Uint8Array<ArrayBuffer>));
  return `${body}.${toBase64Url(mac)}`;
}

/** Relay side: checks the challenge's signature and expiry and that the nonce meets its difficulty.
 * Never throws on malformed input. */
export async function verifyPowSolution(secret: Uint8Array, challenge: string, nonce: string, nowMs: number): Promise<PowCheck> {
  const bad = (message: string): PowCheck => ({ ok: false, code: 'POW_INVALID', message });
  if (typeof challenge !== 'string' || typeof nonce !== 'string' || nonce.length > 64) return bad('challenge and nonce must be strings (nonce ≤ 64 chars)');
  const [body, macText, extra] = challenge.split('.');
  const mac = macText === undefined ? null : fromBase64Url(macText);
  if (extra !== undefined || !body || !mac) return bad('challenge is not of the form claims.signature; ask the relay for a new one');
  const ok = await crypto.subtle.verify('HMAC', await hmacKey(secret), mac as Uint8Array<ArrayBuffer>, utf8(body) as Uint8Array<ArrayBuffer>);
  if (!ok) return bad('challenge signature does not match; it was not issued by this relay');
  let claims: PowClaims;
  try {
    claims = JSON.parse(new TextDecoder().decode(fromBase64Url(body) ?? new Uint8Array())) as PowClaims;
  } catch {
    return bad('challenge claims are not JSON');
  }
  if (nowMs > claims.expiresAt) return { ok: false, code: 'POW_EXPIRED', message: 'challenge has expired; ask the relay for a new one' };
  const bits = await powHashBits(challenge, nonce);
  if (bits < claims.difficulty) return { ok: false, code: 'POW_INSUFFICIENT', message: `nonce gives ${bits} leading zero bits; the challenge needs ${claims.difficulty}` };
  return { ok: true, claims };
}
