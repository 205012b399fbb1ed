// The identity and proof-of-work code in a real headless Chromium: a keypair made and kept in
// IndexedDB, signatures made in the tab and checked by Node (and the other way), a puzzle solved in
// the tab and checked by the relay's code.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdentity, signUpdate, verifyUpdate } from '../../shared/security/identity.ts';
import { utf8 } from '../../shared/security/encoding.ts';
import { issuePowChallenge, verifyPowSolution } from '../../shared/security/pow.ts';
import { launchBrowser } from '../helpers/browser.ts';
import { startPageServer, type PageServer } from '../helpers/vite.ts';

type SecurityApi = {
  sign(taskId: string, lease: string, payload: number[]): Promise<{ id: string; publicKey: string; signature: string; extractable: boolean }>;
  verify(publicKey: string, signature: string, taskId: string, lease: string, payload: number[]): Promise<{ ok: boolean }>;
  solve(challenge: string, difficulty: number): Promise<string>;
};
declare global { interface Window { security: SecurityApi; securityReady?: boolean } }

describe('volunteer identity in the browser', () => {
  let server: PageServer, browser: Browser, page: Page;
  const payload = [9, 8, 7, 6, 5];
  const open = async () => {
    await page.goto(`${server.url}/test/defence/pages/security.html`);
    await page.waitForFunction(() => window.securityReady === true, undefined, { timeout: 120_000 });
  };

  beforeAll(async () => {
    server = await startPageServer();
    browser = await launchBrowser({ webgpu: false });
    page = await browser.newPage();
    await open();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('signs an upload in the tab that Node verifies, with a key that survives a reload', async () => {
    const a = await page.evaluate(([p]) => window.security.sign('task-1', 'lease-1', p), [payload] as const);
    expect(a.extractable).toBe(false);
    expect(await verifyUpdate(a.publicKey, a.signature, 'task-1', 'lease-1', Uint8Array.from(payload))).toEqual({ ok: true });
    expect((await verifyUpdate(a.publicKey, a.signature, 'task-1', 'lease-1', Uint8Array.from([9, 8, 7, 6, 4]))).ok).toBe(false);
    await open(); // reload: the keypair comes back from IndexedDB
    const b = await page.evaluate(([p]) => window.security.sign('task-2', 'lease-2', p), [payload] as const);
    expect(b.id).toBe(a.id);
    expect(await verifyUpdate(b.publicKey, b.signature, 'task-2', 'lease-2', Uint8Array.from(payload))).toEqual({ ok: true });
  });

  it('verifies in the tab what Node signed, and refuses a wrong signature', async () => {
    const me = await createIdentity();
    const sig = await signUpdate(me, 't', 'l', Uint8Array.from(payload));
    expect(await page.evaluate(([k, s, p]) => window.security.verify(k, s, 't', 'l', p), [me.publicKey, sig, payload] as const)).toEqual({ ok: true });
    const other = await createIdentity();
    expect((await page.evaluate(([k, s, p]) => window.security.verify(k, s, 't', 'l', p), [other.publicKey, sig, payload] as const)).ok).toBe(false);
  });

  it('solves a relay-issued proof-of-work challenge that the relay accepts', async () => {
    const secret = utf8('relay secret');
    const challenge = await issuePowChallenge(secret, Date.now(), 10);
    const nonce = await page.evaluate(([c]) => window.security.solve(c, 10), [challenge] as const);
    expect(await verifyPowSolution(secret, challenge, nonce, Date.now())).toMatchObject({ ok: true });
  });
});
