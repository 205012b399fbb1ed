import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { launchBrowser } from '../helpers/browser.ts';
import { startPageServer, type PageServer } from '../helpers/vite.ts';

describe('browser engine harness (Vite page in headless Chromium)', () => {
  let server: PageServer, browser: Browser, page: Page;
  beforeAll(async () => {
    server = await startPageServer();
    browser = await launchBrowser();
    page = await browser.newPage();
    await page.goto(`${server.url}/test/engine-browser/pages/harness.html`);
    await page.waitForFunction(() => window.tabtrain?.ready === true);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('runs a WGSL compute shader in the page and returns its output to Node', async () => {
    const input = Array.from({ length: 100 }, (_, i) => i - 50.5);
    const r = (await page.evaluate((x) => window.tabtrain.run('wgslDouble', x), input)) as { adapter: string; out: number[] };
    expect(r.out).toEqual(input.map((v) => v * 2));
  });

  it('reports an unknown check by name', async () => {
    await expect(page.evaluate(() => window.tabtrain.run('nope'))).rejects.toThrow(/no browser check named nope/);
  });
});
