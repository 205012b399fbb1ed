import { describe, expect, it } from 'vitest';
import {
  createIdentity, loadOrCreateIdentity, signBytes, signUpdate, verifyBytes, verifyUpdate, identityId,
} from '../../shared/security/identity.ts';
import { fromBase64Url, toBase64Url, utf8 } from '../../shared/security/encoding.ts';
import { issuePowChallenge, leadingZeroBits, solvePow, verifyPowSolution } from '../../shared/security/pow.ts';

describe('volunteer identity and upload signatures (WebCrypto ECDSA P-256)', () => {
  const payload = Uint8Array.from([1, 2, 3, 4, 5]);

  it('a signed upload verifies; a tampered body, another task, another lease or another key do not', async () => {
    const me = await createIdentity();
    const other = await createIdentity();
    expect(me.id).toMatch(/^v_[A-Za-z0-9_-]{22}$/);
    expect(me.id).not.toBe(other.id);
    expect(me.id).toBe(await identityId(fromBase64Url(me.publicKey)!));
    const sig = await signUpdate(me, 't1', 'lease-a', payload);
    expect(await verifyUpdate(me.publicKey, sig, 't1', 'lease-a', payload)).toEqual({ ok: true });
    const tampered = payload.slice(); tampered[2] ^= 1;
    for (const r of [
      await verifyUpdate(me.publicKey, sig, 't1', 'lease-a', tampered),
      await verifyUpdate(me.publicKey, sig, 't2', 'lease-a', payload),
      await verifyUpdate(me.publicKey, sig, 't1', 'lease-b', payload),
      await verifyUpdate(other.publicKey, sig, 't1', 'lease-a', payload),
    ]) expect(r).toMatchObject({ ok: false, code: 'WRONG_SIGNATURE' });
  });
  it('base64url decodes only the canonical spelling of some bytes', async () => {
    expect(Array.from(fromBase64Url('AA')!)).toEqual([0]);
    expect(fromBase64Url('AB')).toBeNull(); // the same byte, with a stray bit in the last character
    const me = await createIdentity();
    const sig = await signBytes(me.keys.privateKey, utf8('x')); // 64 bytes: 86 characters, 2 stray bits in the last
    const last = sig.at(-1)!, alias = String.fromCharCode(last.charCodeAt(0) ^ 1);
    expect(await verifyBytes(me.publicKey, sig, utf8('x'))).toEqual({ ok: true });
    if (/[A-Za-z]/.test(alias)) expect(await verifyBytes(me.publicKey, sig.slice(0, -1) + alias, utf8('x'))).toMatchObject({ ok: false, code: 'BAD_SIGNATURE_FORMAT' });
  });
  it('malformed keys and signatures are refused, never thrown', async () => {
    const me = await createIdentity();
    const sig = await signBytes(me.keys.privateKey, utf8('x'));
    expect(await verifyBytes('not base64!', sig, utf8('x'))).toMatchObject({ ok: false, code: 'BAD_PUBLIC_KEY' });
    expect(await verifyBytes(toBase64Url(new Uint8Array(65).fill(4)), sig, utf8('x'))).toMatchObject({ ok: false, code: 'BAD_PUBLIC_KEY' });
    expect(await verifyBytes(me.publicKey, sig.slice(0, 10), utf8('x'))).toMatchObject({ ok: false, code: 'BAD_SIGNATURE_FORMAT' });
    expect(await verifyBytes(me.publicKey, toBase64Url(new Uint8Array(64)), utf8('x'))).toMatchObject({ ok: false, code: 'WRONG_SIGNATURE' });
  });
  it('loadOrCreateIdentity makes a keypair once and reuses it (the private key is not extractable)', async () => {
    let stored: CryptoKeyPair | undefined;
    const store = { get: async () => stored, put: async (k: CryptoKeyPair) => { stored = k; } };
    const a = await loadOrCreateIdentity(store);
    const b = await loadOrCreateIdentity(store);
    expect(b.id).toBe(a.id);
    expect(a.keys.privateKey.extractable).toBe(false);
  });
});

describe('proof of work for new identities', () => {
  const secret = utf8('relay secret for tests');
  it('leadingZeroBits counts bits', () => {
    expect(leadingZeroBits(Uint8Array.from([0, 0x10, 0xff]))).toBe(11);
    expect(leadingZeroBits(Uint8Array.from([0x80]))).toBe(0);
    expect(leadingZeroBits(new Uint8Array(2))).toBe(16);
  });
  it('a solved challenge verifies; a wrong nonce, a forged or expired challenge do not', async () => {
    const ch = await issuePowChallenge(secret, 1000, 8, 60_000);
    const nonce = await solvePow(ch, 8);
    expect(await verifyPowSolution(secret, ch, nonce, 2000)).toMatchObject({ ok: true, claims: { difficulty: 8 } });
    expect(await verifyPowSolution(secret, ch, nonce, 70_000)).toMatchObject({ ok: false, code: 'POW_EXPIRED' });
    // find a nonce that does not meet the difficulty
    let wrong = 'x0';
    for (let i = 0; (await verifyPowSolution(secret, ch, wrong, 2000)).ok; i++) wrong = `x${i}`;
    expect(await verifyPowSolution(secret, ch, wrong, 2000)).toMatchObject({ ok: false, code: 'POW_INSUFFICIENT' });
    // raising the difficulty in the claims breaks the relay's signature
    const [body, mac] = ch.split('.');
    const claims = JSON.parse(new TextDecoder().decode(fromBase64Url(body)!));
    const forged = `${toBase64Url(utf8(JSON.stringify({ ...claims, difficulty: 0 })))}.${mac}`;
    expect(await verifyPowSolution(secret, forged, 'anything', 2000)).toMatchObject({ ok: false, code: 'POW_INVALID' });
    expect(await verifyPowSolution(utf8('another relay'), ch, nonce, 2000)).toMatchObject({ ok: false, code: 'POW_INVALID' });
    for (const junk of ['', '.', 'a.b.c', 'abc', '!!.??']) {
      expect(await verifyPowSolution(secret, junk, '1', 2000)).toMatchObject({ ok: false, code: 'POW_INVALID' });
    }
  });
});
