// The relay checks signatures with node:crypto on the thread pool (server/defence/signatures.ts) while
// volunteers sign with WebCrypto (shared/security/identity.ts): every case the WebCrypto check refuses,
// this one refuses with the same code, and what it accepts, the WebCrypto check accepts too.
import { describe, expect, it } from 'vitest';
import { verifySignature, verifyTaskRequestSignature, verifyUploadSignature } from '../../server/defence/signatures.ts';
import { fromBase64Url, toBase64Url, toHex, utf8 } from '../../shared/security/encoding.ts';
import { createIdentity, signBytes, signTaskRequest, signUpdate, verifyBytes } from '../../shared/security/identity.ts';
import { createHash } from 'node:crypto';

const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const hashHex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** (r, s) → (r, n − s): the same signature's other spelling, which ECDSA (and WebCrypto) accepts. */
function flipS(sig: string): string {
  const b = fromBase64Url(sig)!.slice();
  const s = N - BigInt(`0x${toHex(b.subarray(32))}`);
  b.set(Buffer.from(s.toString(16).padStart(64, '0'), 'hex'), 32);
  return toBase64Url(b);
}

describe('upload and task-request signatures, checked with node:crypto', () => {
  const payload = Uint8Array.from([1, 2, 3, 4, 5]);

  it('a signed upload verifies; a tampered body, another task, another lease or another key do not', async () => {
    const me = await createIdentity();
    const other = await createIdentity();
    const sig = await signUpdate(me, 't1', 'lease-a', payload);
    expect(await verifyUploadSignature(me.publicKey, sig, 't1', 'lease-a', hashHex(payload))).toEqual({ ok: true });
    const tampered = payload.slice(); tampered[2] ^= 1;
    for (const r of [
      await verifyUploadSignature(me.publicKey, sig, 't1', 'lease-a', hashHex(tampered)),
      await verifyUploadSignature(me.publicKey, sig, 't2', 'lease-a', hashHex(payload)),
      await verifyUploadSignature(me.publicKey, sig, 't1', 'lease-b', hashHex(payload)),
      await verifyUploadSignature(other.publicKey, sig, 't1', 'lease-a', hashHex(payload)),
    ]) expect(r).toMatchObject({ ok: false, code: 'WRONG_SIGNATURE' });
  });

  it('a signed task request verifies for its job, volunteer and time only', async () => {
    const me = await createIdentity();
    const sig = await signTaskRequest(me, 'job-a', 1000);
    expect(await verifyTaskRequestSignature(me.publicKey, sig, 'job-a', me.id, 1000)).toEqual({ ok: true });
    expect(await verifyTaskRequestSignature(me.publicKey, sig, 'job-b', me.id, 1000)).toMatchObject({ ok: false, code: 'WRONG_SIGNATURE' });
    expect(await verifyTaskRequestSignature(me.publicKey, sig, 'job-a', 'v_someone', 1000)).toMatchObject({ ok: false, code: 'WRONG_SIGNATURE' });
    expect(await verifyTaskRequestSignature(me.publicKey, sig, 'job-a', me.id, 1001)).toMatchObject({ ok: false, code: 'WRONG_SIGNATURE' });
  });

  it('gives the WebCrypto check\'s answer for malformed keys and signatures, never throwing', async () => {
    const me = await createIdentity();
    const msg = utf8('x');
    const sig = await signBytes(me.keys.privateKey, msg);
    const last = sig.at(-1)!, alias = String.fromCharCode(last.charCodeAt(0) ^ 1);
    const offCurve = toBase64Url(Uint8Array.from({ length: 65 }, (_, i) => (i === 0 ? 4 : 1)));
    const cases: [string, string, Uint8Array][] = [
      [me.publicKey, sig, msg],
      [me.publicKey, flipS(sig), msg], // the high-s spelling verifies in both (replays are caught by canonicalSignature)
      ['not base64!', sig, msg],
      [toBase64Url(new Uint8Array(65).fill(4)), sig, msg],
      [offCurve, sig, msg],
      [me.publicKey.slice(0, 40), sig, msg],
      [me.publicKey, sig.slice(0, 10), msg],
      [me.publicKey, `${sig}==`, msg],
      [me.publicKey, toBase64Url(new Uint8Array(64)), msg],
      [me.publicKey, toBase64Url(new Uint8Array(64).fill(255)), msg],
      [me.publicKey, sig, utf8('y')],
    ];
    if (/[A-Za-z]/.test(alias)) cases.push([me.publicKey, sig.slice(0, -1) + alias, msg]); // a non-canonical spelling
    for (const [key, s, m] of cases) {
      const mine = await verifySignature(key, s, m);
      const web = await verifyBytes(key, s, m);
      expect({ key: key.slice(0, 12), s: s.slice(-6), ok: mine.ok, code: mine.ok ? undefined : mine.code })
        .toEqual({ key: key.slice(0, 12), s: s.slice(-6), ok: web.ok, code: web.ok ? undefined : web.code });
    }
    // both answers occur among the cases
    expect(await verifySignature(me.publicKey, sig, msg)).toEqual({ ok: true });
    expect(await verifySignature(offCurve, sig, msg)).toMatchObject({ ok: false, code: 'BAD_PUBLIC_KEY' });
  });
});
