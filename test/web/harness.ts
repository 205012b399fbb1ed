// Shared pieces of the volunteer page's e2e tests: a relay (in-process, or a child process that can be
// killed), tabs in headless Chromium, polling, relay metrics and screenshots into artifacts/.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import type { Hyperparameters } from '../../shared/protocol/messages.ts';
import type { DeviceInfo, Phase, Stats } from '../../shared/volunteer/status.ts';

export const root = resolve(import.meta.dirname, '../..');
export const artifacts = join(root, 'artifacts');
export const JOB = 'mnist-mlp';

/** The built page must exist: `npm test` runs `vite build` first; running this file alone needs it too. */
export function requireBuild(): void {
  if (!existsSync(join(root, 'dist/index.html'))) throw new Error('dist/index.html is missing: run `npm run build` (npm test does) before the web tests');
}

/** A relay on a random loopback port serving the built page, with the default job's settings overridden. */
export function startWebRelay(job: Partial<Hyperparameters> = {}): Promise<TestRelay> {
  return startRelay({ defaultJob: job, sweepMs: 250, staticDir: join(root, 'dist') });
}

/** A relay in a child process (`tabtrain start`), so a test can kill -9 it and start it again on the same port and data. */
export function startRelayProcess(port: number, dataDir: string, leaseMs: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'server/cli/main.ts'), 'start', '--port', String(port), '--host', '127.0.0.1',
    '--data-dir', dataDir, '--lease-ms', String(leaseMs), '--sweep-ms', '250', '--quiet'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolveStart, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`relay did not start in 60 s: ${out}`)), 60_000);
    const onData = (b: Buffer) => {
      out += b.toString();
      if (out.includes('listening on')) { clearTimeout(timer); resolveStart(child); }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`relay exited with ${code}: ${out}`)); });
  });
}

export type TabState = { phase: Phase; detail?: string; device?: DeviceInfo; stats?: Stats; consent: boolean };

export type Tab = { page: Page; context: BrowserContext; logs: string[] };

/** A tab in its own browser context (its own IndexedDB, like another person), consent already given unless asked. */
export async function openTab(browser: Browser, url: string, opts: { consent?: boolean; context?: BrowserContext } = {}): Promise<Tab> {
  const context = opts.context ?? (await browser.newContext({ viewport: { width: 1000, height: 860 } }));
  if (opts.consent !== false) await context.addInitScript(() => localStorage.setItem('tabtrain.consent.v1', 'yes'));
  const page = await context.newPage();
  const logs: string[] = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  await page.goto(url);
  return { page, context, logs };
}

export const tabState = (page: Page): Promise<TabState> => page.evaluate(() => JSON.parse(JSON.stringify((globalThis as unknown as { tabtrain: unknown }).tabtrain)) as TabState);

/** Polls `probe` until it returns a truthy value; fails naming `what` (and the last value seen) on timeout. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false | null>, timeoutMs = 120_000, everyMs = 250): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function bestAccuracy(url: string, jobId = JOB): Promise<number> {
  const { evals } = (await (await fetch(`${url}/api/jobs/${jobId}/evals`)).json()) as { evals: { accuracy: number }[] };
  return Math.max(0, ...evals.map((e) => e.accuracy));
}

export async function jobVersion(url: string, jobId = JOB): Promise<number> {
  return ((await (await fetch(`${url}/api/jobs/${jobId}`)).json()) as { version: number }).version;
}

/** Sum of a Prometheus counter over the series whose labels include `match` (e.g. 'reissue="yes"'). */
export async function metric(url: string, name: string, match = ''): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (match && !line.includes(match))) continue;
    if (line[name.length] !== '{' && line[name.length] !== ' ') continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
  }
  return sum;
}

/** Screenshot into artifacts/ (gitignored), for people to look at. */
export async function snap(page: Page, name: string): Promise<string> {
  mkdirSync(artifacts, { recursive: true });
  const path = join(artifacts, `volunteer-${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** What this tab has in IndexedDB for its slot: the task in progress and a checksum of its residual
 * (computed in the page the same way the worker does: FNV-1a over the stored bytes). */
export async function storedState(page: Page, jobId = JOB): Promise<{ slot: number; taskId?: string; residualChecksum: number; residualNonZero: number }> {
  return page.evaluate(async (job) => {
    const slot = Number(sessionStorage.getItem('tabtrain.slot') ?? 0);
    const db = await new Promise<IDBDatabase>((res, rej) => {
      const r = indexedDB.open('tabtrain-volunteer');
      r.onsuccess = () => res(r.result);
      r.onerror = () => rej(r.error);
    });
    const get = (store: string, key: string) => new Promise<unknown>((res, rej) => {
      const r = db.transaction(store).objectStore(store).get(key);
      r.onsuccess = () => res(r.result);
      r.onerror = () => rej(r.error);
    });
    const task = (await get('records', `task:${slot}`)) as { taskId?: string } | undefined;
    const blob = (await get('blobs', `residual:${slot}:${job}`)) as { bytes: ArrayBuffer } | undefined;
    db.close();
    let h = 0x811c9dc5, nonZero = 0;
    if (blob) {
      const b = new Uint8Array(blob.bytes);
      for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i], 0x01000193);
      const f = new Float32Array(blob.bytes);
      for (let i = 0; i < f.length; i++) if (f[i] !== 0) nonZero++;
    }
    return { slot, taskId: task?.taskId, residualChecksum: blob ? h >>> 0 : 0, residualNonZero: nonZero };
  }, jobId);
}

/** A free loopback port (for a relay process that must come back on the same address). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((res) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}
