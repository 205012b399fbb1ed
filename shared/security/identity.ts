// Volunteer identity: an ECDSA P-256 keypair made with WebCrypto in the tab (the private key is
// non-extractable and lives in IndexedDB as a CryptoKey), and the signature on every upload.
// P-256 rather than Ed25519 because every browser and Node 20 implement it without flags; signatures
// are IEEE P1363 (r‖s, 64 bytes) on both sides. The volunteer id is derived from the public key, so an
// identity cannot be claimed without the key.
import { fromBase64Url, sha256, toBase64Url, toHex, utf8 } from './encoding.ts';

const ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

export type Identity = {
  keys: CryptoKeyPair;
  /** Uncompressed P-256 point (65 bytes), base64url: what the relay stores. */
  publicKey: string;
  /** "v_" + 22 base64url chars of SHA-256(public key). */
  id: string;
};

/** Where a tab keeps its keypair (web/volunteer plugs IndexedDB in; tests use a Map). `extractable`:
 * the store writes keys out (the Node volunteer's JWK file), so new keys must be exportable; IndexedDB
 * stores CryptoKeys as they are, so a tab's private key stays non-extractable. */
export type KeyStore = { get(): Promise<CryptoKeyPair | undefined>; put(keys: CryptoKeyPair): Promise<void>; extractable?: boolean };

export async function createIdentity(opts: { extractable?: boolean } = {}): Promise<Identity> {
  const keys = (await crypto.subtle.generateKey(ALG, opts.extractable ?? false, ['sign', 'verify'])) as CryptoKeyPair;
  return identityFromKeys(keys);
}

/** The private key as a JWK (it carries the public point too), for a store that keeps keys in a file.
 * Throws for a non-extractable key: only keys made with `extractable: true` can be saved this way. */
export async function exportKeysJwk(keys: CryptoKeyPair): Promise<JsonWebKey> {
  return crypto.subtle.exportKey('jwk', keys.privateKey);
}

/** The keypair back from exportKeysJwk's JWK; checks it is a P-256 private key. */
export async function importKeysJwk(jwk: JsonWebKey): Promise<CryptoKeyPair> {
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.d !== 'string' || typeof jwk.x !== 'string' || typeof jwk.y !== 'string') {
    throw new Error('the saved key is not a P-256 private key in JWK form (kty "EC", crv "P-256", with d, x and y)');
  }
  const privateKey = await crypto.subtle.importKey('jwk', jwk, ALG, true, ['sign']);
  const publicKey = await crypto.subtle.importKey('jwk', { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, ext: true }, ALG, true, ['verify']);
  return { privateKey, publicKey };
}

export async function identityFromKeys(keys: CryptoKeyPair): Promise<Identity> {
  const raw = new Uint8Array(await crypto.subtle.exportKey('raw', keys.publicKey));
  return { keys, publicKey: toBase64Url(raw), id: await identityId(raw) };
}

/** Loads the tab's identity, creating and storing one on first use. */
export async function loadOrCreateIdentity(store: KeyStore): Promise<Identity> {
  const existing = await store.get();
  if (existing) return identityFromKeys(existing);
  const id = await createIdentity({ extractable: store.extractable });
  await store.put(id.keys);
  return id;
}

export async function identityId(publicKeyRaw: Uint8Array): Promise<string> {
  return `v_${toBase64Url(await sha256(publicKeyRaw)).slice(0, 22)}`;
}

/** What an upload's signature covers: the task, its lease, and the SHA-256 of the exact payload bytes,
 * so neither the body nor the lease can be swapped without breaking it. */
export async function updateSigningBytes(taskId: string, lease: string, payload: Uint8Array): Promise<Uint8Array> {
  return updateSigningBytesFor(taskId, lease, toHex(await sha256(payload)));
}

/** The same message when the payload's SHA-256 (hex) is already known: the relay hashes each body once. */
export function updateSigningBytesFor(taskId: string, lease: string, payloadSha256Hex: string): Uint8Array {
  return utf8(`tabtrain-update-v1\n${taskId}\n${lease}\n${payloadSha256Hex}`);
}

export async function signBytes(privateKey: CryptoKey, message: Uint8Array): Promise<string> {
  return toBase64Url(lowS(new Uint8Array(await crypto.subtle.sign(SIGN, privateKey, message as Uint8Array<ArrayBuffer>))));
}

/** The order n of P-256's base point, and n / 2. */
const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const HALF_N = N >> 1n;

const toBigInt = (b: Uint8Array): bigint => b.reduce((acc, x) => (acc << 8n) | BigInt(x), 0n);

/** An ECDSA signature (r‖s) is malleable: (r, n − s) verifies for the same message and key, so a
 * signature's bytes do not name it uniquely. This is its one low-s form (s ≤ n / 2), the same for both
 * spellings; signatures we make are already in it. */
export function lowS(sig: Uint8Array): Uint8Array {
  if (sig.length !== 64) return sig;
  const s = toBigInt(sig.subarray(32));
  if (s <= HALF_N) return sig;
  const out = sig.slice();
  let t = N - s;
  for (let i = 63; i >= 32; i--) { out[i] = Number(t & 0xffn); t >>= 8n; }
  return out;
}

/** A base64url signature in its low-s form, for remembering which signatures were used (undefined for
 * one that is not base64url of 64 bytes): a replay with s flipped to n − s is then the same signature. */
export function canonicalSignature(signature: string): string | undefined {
  const sig = fromBase64Url(signature);
  return sig && sig.length === 64 ? toBase64Url(lowS(sig)) : undefined;
}

export type VerifyResult = { ok: true } | { ok: false; code: 'BAD_PUBLIC_KEY' | 'BAD_SIGNATURE_FORMAT' | 'WRONG_SIGNATURE'; message: string };

/** Verification keys already imported, by their base64url point: importing costs about as much as the
 * verify itself, and a relay checks the same few thousand volunteers' keys over and over. Oldest out first. */
const importedKeys = new Map<string, CryptoKey>();
const IMPORTED_KEYS_MAX = 4096;

/** Checks a base64url signature against a base64url raw public key. Never throws: malformed keys or
 * signatures come back as a refusal saying which. */
export async function verifyBytes(publicKey: string, signature: string, message: Uint8Array): Promise<VerifyResult> {
  const raw = fromBase64Url(publicKey);
  if (!raw || raw.length !== 65 || raw[0] !== 4) return { ok: false, code: 'BAD_PUBLIC_KEY', message: 'public key must be a base64url uncompressed P-256 point (65 bytes)' };
  const sig = fromBase64Url(signature);
  if (!sig || sig.length !== 64) return { ok: false, code: 'BAD_SIGNATURE_FORMAT', message: 'signature must be base64url of 64 bytes (ECDSA P-256, r‖s)' };
  let key = importedKeys.get(publicKey);
  if (!key) {
    try {
      key = await crypto.subtle.importKey('raw', raw as Uint8Array<ArrayBuffer>, ALG, false, ['verify']);
    } catch {
      return { ok: false, code: 'BAD_PUBLIC_KEY', message: 'public key is not a point on P-256' };
    }
    if (importedKeys.size >= IMPORTED_KEYS_MAX) importedKeys.delete(importedKeys.keys().next().value!);
    importedKeys.set(publicKey, key);
  }
  const ok = await crypto.subtle.verify(SIGN, key, sig as Uint8Array<ArrayBuffer>, message as Uint8Array<ArrayBuffer>);
  return ok ? { ok: true } : { ok: false, code: 'WRONG_SIGNATURE', message: 'signature does not match this volunteer\'s key and the uploaded bytes' };
}

/** What a task request's signature covers: the job, the volunteer asking and when (relay clock, ms), so
 * nobody can ask for work in another volunteer's name (spending its rate limit, filling rounds with
 * leases it never sees) and a request cannot be replayed later. */
export function taskRequestSigningBytes(jobId: string, volunteerId: string, at: number): Uint8Array {
  return utf8(`tabtrain-task-request-v1\n${jobId}\n${volunteerId}\n${at}`);
}

export async function signTaskRequest(identity: Identity, jobId: string, at: number): Promise<string> {
  return signBytes(identity.keys.privateKey, taskRequestSigningBytes(jobId, identity.id, at));
}

export async function signUpdate(identity: Identity, taskId: string, lease: string, payload: Uint8Array): Promise<string> {
  return signBytes(identity.keys.privateKey, await updateSigningBytes(taskId, lease, payload));
}

export async function verifyUpdate(publicKey: string, signature: string, taskId: string, lease: string, payload: Uint8Array): Promise<VerifyResult> {
  return verifyBytes(publicKey, signature, await updateSigningBytes(taskId, lease, payload));
}

/** verifyUpdate for a payload already hashed (SHA-256 hex). */
export async function verifyUpdateDigest(publicKey: string, signature: string, taskId: string, lease: string, payloadSha256Hex: string): Promise<VerifyResult> {
  return verifyBytes(publicKey, signature, updateSigningBytesFor(taskId, lease, payloadSha256Hex));
}
