// Attack: replay a signed task request with its ECDSA signature's s flipped to n − s. WebCrypto accepts
// both (r, s) and (r, n − s), so a used-signature check on the string alone let the replay lease a second
// task in the victim's name. The relay must see the flipped signature as the one it already used; our
// own clients sign in low-s form.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, toBase64Url } from '../../shared/security/encoding.ts';
import { canonicalSignature, createIdentity, lowS, signBytes, taskRequestSigningBytes } from '../../shared/security/identity.ts';
import { registerSigned } from '../helpers/identity.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';

const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const sOf = (sig: string) => BigInt(`0x${Buffer.from(fromBase64Url(sig)!.subarray(32)).toString('hex')}`);

/** (r, s) → (r, n − s): the other signature WebCrypto accepts for the same message and key. */
function flipS(sig: string): string {
  const b = fromBase64Url(sig)!.slice();
  const s = N - sOf(sig);
  b.set(Buffer.from(s.toString(16).padStart(64, '0'), 'hex'), 32);
  return toBase64Url(b);
}

let relay: TestRelay;
beforeAll(async () => { relay = await startRelay({ defaultJob: { updatesPerRound: 1000, quorum: 1000 } }); });
afterAll(async () => { await relay.stop(); });

describe('ECDSA malleability', () => {
  it('refuses a task request replayed with s flipped to n − s', async () => {
    const victim = await registerSigned(relay.url);
    const headers = await victim.taskRequestHeaders('mnist-mlp');
    const ask = (h: Record<string, string>) => fetch(`${relay.url}/api/jobs/mnist-mlp/tasks`, { method: 'POST', headers: h, body: JSON.stringify({ volunteerId: victim.volunteerId }) });
    expect((await ask(headers)).status).toBe(200);
    const flipped = flipS(headers['x-tabtrain-signature']);
    // the premise: the flipped signature is a valid signature of the same request
    const key = await crypto.subtle.importKey('raw', fromBase64Url(victim.identity.publicKey)! as Uint8Array<ArrayBuffer>, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
    const message = taskRequestSigningBytes('mnist-mlp', victim.volunteerId, Number(headers['x-tabtrain-time']));
    expect(await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key, fromBase64Url(flipped)! as Uint8Array<ArrayBuffer>, message as Uint8Array<ArrayBuffer>)).toBe(true);
    const replay = await ask({ ...headers, 'x-tabtrain-signature': flipped });
    expect(replay.status).toBe(403);
    expect((await replay.json() as { error: { code: string; message: string } }).error).toMatchObject({ code: 'TT_ERR_REQUEST_SIGNATURE', message: expect.stringMatching(/already used/) });
    // and the plain replay is refused as before
    expect((await ask(headers)).status).toBe(403);
  });

  it('signs in low-s form, and names both forms of a signature alike', async () => {
    const id = await createIdentity();
    for (let i = 0; i < 32; i++) { // a high s comes half the time from a plain signer: 32 tries all low
      const sig = await signBytes(id.keys.privateKey, new TextEncoder().encode(`message ${i}`));
      expect(sOf(sig) <= N / 2n).toBe(true);
      expect(canonicalSignature(flipS(sig))).toBe(sig);
      expect(canonicalSignature(sig)).toBe(sig);
    }
    expect(lowS(new Uint8Array(10)).length).toBe(10); // not a P-256 signature: left as it is
    expect(canonicalSignature('not base64url!')).toBeUndefined();
  });
});
