// Security headers on pages and API (the API token lives in the pages' localStorage, so a script
// injected into a page must not run): Content-Security-Policy, X-Content-Type-Options, X-Frame-Options,
// Referrer-Policy. Then every built page is opened in headless Chromium from the relay itself and must
// load, start its module scripts and workers, and compile WebAssembly without one CSP violation.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '../helpers/browser.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';

const dist = resolve(import.meta.dirname, '../../dist');
let relay: TestRelay;
let browser: Browser;
beforeAll(async () => {
  if (!existsSync(join(dist, 'index.html'))) throw new Error('dist/index.html is missing: run `npm run build` (npm test does) before this test');
  relay = await startRelay({ staticDir: dist });
  browser = await launchBrowser({ webgpu: false });
});
afterAll(async () => { await browser?.close(); await relay?.stop(); });

describe('security headers', () => {
  it.each(['/', '/dashboard.html', '/api/jobs', '/api/tasks/t-none/update', '/no-such-route'])('are on %s', async (path) => {
    const r = await fetch(relay.url + path, path.includes('update') ? { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(4) } : {});
    const csp = r.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self' 'wasm-unsafe-eval'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("object-src 'none'");
    expect(csp).not.toContain("'unsafe-eval'"); // only its WebAssembly form
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    expect(r.headers.get('x-frame-options')).toBe('DENY');
    expect(r.headers.get('referrer-policy')).toBe('no-referrer');
  });

  it('block an inline script injected into a page', async () => {
    const page = await browser.newPage();
    const violations: string[] = [];
    page.on('console', (m) => { if (/Content Security Policy/.test(m.text())) violations.push(m.text()); });
    await page.goto(`${relay.url}/dashboard.html`);
    const ran = await page.evaluate(async () => {
      const s = document.createElement('script');
      s.textContent = 'window.injected = true';
      document.body.append(s);
      await new Promise((r) => setTimeout(r, 50));
      return (window as unknown as { injected?: boolean }).injected === true;
    });
    expect(ran).toBe(false);
    expect(violations.length).toBeGreaterThan(0);
    await page.close();
  });

  it.each(['/', '/dashboard.html', '/submit.html', '/job.html?id=mnist-mlp'])('let %s load and run with no CSP violation', async (path) => {
    const page = await browser.newPage();
    const violations: string[] = [];
    page.on('console', (m) => { if (/Content Security Policy|Refused to/.test(m.text())) violations.push(m.text()); });
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => console.error(`Refused to load ${e.blockedURI} (Content Security Policy ${e.violatedDirective})`));
    });
    await page.goto(relay.url + path, { waitUntil: 'networkidle' });
    // the page's module script ran (it fills the page from the API), a same-origin worker starts, and
    // WebAssembly compiles (onnxruntime-web needs 'wasm-unsafe-eval')
    const probe = await page.evaluate(async () => {
      const wasm = await WebAssembly.compile(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])).then(() => true, () => false);
      const scripts = [...document.querySelectorAll('script[type=module]')].map((s) => (s as HTMLScriptElement).src);
      const worker = await new Promise<boolean>((resolve) => {
        const w = new Worker(URL.createObjectURL(new Blob(['postMessage(1)'], { type: 'text/javascript' })));
        w.onmessage = () => { w.terminate(); resolve(true); };
        w.onerror = () => resolve(false);
      });
      return { wasm, scripts, worker };
    });
    expect(probe.wasm).toBe(true);
    expect(probe.worker).toBe(true);
    expect(probe.scripts.length).toBeGreaterThan(0);
    expect(probe.scripts.every((s) => s.startsWith(relay.url))).toBe(true);
    expect(violations).toEqual([]);
    await page.close();
  });
});
