// Nothing is lost: a closed tab's lease expires and its work is re-issued, a reloaded tab resumes its task
// with the residual it had, tabs ride out a relay killed and restarted, a browser without WebGPU trains
// on the CPU, and a Node volunteer trains beside a tab. Tabs here mostly run the CPU path (?cpu=1),
// which the page offers for any browser: these tests are about the page and the loop, and the CPU path
// keeps them short; the WebGPU path is tested in volunteer-webgpu.test.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '../helpers/browser.ts';
import {
  freePort, jobVersion, metric, openTab, requireBuild, root, snap, startRelayProcess, startWebRelay, storedState, tabState, waitFor, type Tab,
} from './harness.ts';

describe('volunteer tabs lose nothing', () => {
  let browser: Browser;
  beforeAll(async () => {
    requireBuild();
    browser = await launchBrowser();
  });
  afterAll(async () => { await browser?.close(); });

  it('closing a tab mid-task: its lease expires, the task is re-issued, training goes on', async () => {
    // short tasks and a lease that outlasts them even on a loaded machine, yet expires soon after A is gone
    const relay = await startWebRelay({ leaseMs: 15_000, steps: 5 });
    const tabs: Tab[] = [];
    try {
      const [a, b] = [await openTab(browser, `${relay.url}/?cpu=1`), await openTab(browser, `${relay.url}/?cpu=1`)];
      tabs.push(a, b);
      await waitFor('tab A to have an update accepted', async () => (await tabState(a.page)).stats?.updatesAccepted);
      // pause A: it stops before its next inner step, holding a leased task
      await a.page.locator('#toggle').click();
      await waitFor('tab A to stop mid-task', async () => (await tabState(a.page)).stats?.pausedMidTask, 30_000, 100);
      const held = (await storedState(a.page)).taskId!;
      expect(relay.app.store.getTask(held)?.state).toMatch(/issued|expired/);
      await a.context.close();
      tabs.shift();
      const versionAtClose = await jobVersion(relay.url);
      // the relay's own records: A's task expired, and a task with its shard and seed went out again
      const reissue = await waitFor('the closed tab\'s task to expire and be re-issued', async () =>
        relay.app.store.getTask(held)?.state === 'expired' &&
        (relay.app.db.prepare('SELECT task_id AS taskId FROM tasks WHERE reissue_of = ?').get(held) as { taskId: string } | undefined));
      const again = relay.app.store.getTask(reissue.taskId)!;
      const original = relay.app.store.getTask(held)!;
      expect([again.shard, again.seed]).toEqual([original.shard, original.seed]);
      expect(await metric(relay.url, 'tabtrain_leases_expired_total')).toBeGreaterThanOrEqual(1);
      expect(await metric(relay.url, 'tabtrain_tasks_issued_total', 'reissue="yes"')).toBeGreaterThanOrEqual(1);
      const acceptedBefore = (await tabState(b.page)).stats!.updatesAccepted;
      await waitFor('training to go on after the re-issue', async () =>
        (await jobVersion(relay.url)) >= versionAtClose + 2 && (await tabState(b.page)).stats!.updatesAccepted > acceptedBefore);
      expect((await tabState(b.page)).phase).not.toBe('error');
    } finally {
      for (const t of tabs) await t.context.close();
      await relay.stop();
    }
  });

  it('reloading a tab mid-task resumes that task with the error-feedback residual it had', async () => {
    const relay = await startWebRelay({ leaseMs: 120_000 });
    let tab: Tab | undefined;
    try {
      tab = await openTab(browser, `${relay.url}/?cpu=1`);
      const { page } = tab;
      await waitFor('an accepted update (so the residual is not empty)', async () => (await tabState(page)).stats?.updatesAccepted);
      await page.locator('#toggle').click();
      await waitFor('the tab to stop between two steps of a task', async () => (await tabState(page)).stats?.pausedMidTask, 30_000, 100).catch(async (e: Error) => {
        // say where the tab was instead (its phase, last problem and the worker's log), for a failure seen once
        const s = await tabState(page);
        throw new Error(`${e.message}; tab: ${JSON.stringify({ phase: s.phase, detail: s.detail, lastError: s.stats?.lastError, steps: s.stats?.steps })}; log: ${tab!.logs.slice(-8).join(' | ')}`);
      });
      // the previous task's update encodes and uploads while this one trains: let it land (its residual
      // is written before it goes up), so the stored state read next is the state a reload finds
      const held = (await storedState(page)).taskId!;
      await waitFor('the updates of the tasks before the held one to reach the relay', async () => (relay.app.db.prepare(
        `SELECT count(*) AS n FROM tasks WHERE state = 'issued' AND volunteer_id = (SELECT volunteer_id FROM tasks WHERE task_id = ?)
           AND issued_at < (SELECT issued_at FROM tasks WHERE task_id = ?)`).get(held, held) as { n: number }).n === 0, 30_000, 100);
      const before = await storedState(page);
      expect(before.taskId).toMatch(/\S/);
      expect(before.residualNonZero).toBeGreaterThan(0);
      await page.reload();
      // the pause is remembered, so the resumed task waits at its first step for us to look
      const resumed = await waitFor('the resumed task', async () => (await tabState(page)).stats?.resumed, 60_000);
      expect(resumed.taskId).toBe(before.taskId);
      expect(resumed.residualChecksum).toBe(before.residualChecksum);
      expect((await storedState(page)).slot).toBe(before.slot);
      await page.locator('#toggle').click();
      const after = await waitFor('the resumed task to be uploaded and accepted', async () => {
        const s = (await tabState(page)).stats;
        return s && s.updatesAccepted >= 1 ? s : undefined;
      });
      expect(after.lastError ?? '').not.toMatch(/dropped/);
    } finally {
      await tab?.context.close();
      await relay.stop();
    }
  });

  it('the relay killed and restarted during training: tabs reconnect by themselves and training goes on', async () => {
    const port = await freePort();
    const dataDir = mkdtempSync(join(tmpdir(), 'tabtrain-restart-'));
    const url = `http://127.0.0.1:${port}`;
    let relay: ChildProcess | undefined = await startRelayProcess(port, dataDir, 20_000);
    const tabs: Tab[] = [];
    try {
      tabs.push(await openTab(browser, `${url}/?cpu=1`), await openTab(browser, `${url}/?cpu=1`));
      // both tabs working before the kill: one tab alone can make version 2 while the other still registers
      await waitFor('version 2 with an accepted update from each tab', async () => (await jobVersion(url)) >= 2
        && (await Promise.all(tabs.map(async (t) => (await tabState(t.page)).stats?.updatesAccepted ?? 0))).every((n) => n >= 1));
      relay.kill('SIGKILL');
      await new Promise((r) => relay!.once('exit', r));
      relay = undefined;
      await waitFor('a tab to notice the relay is gone', async () => {
        const s = await tabState(tabs[0].page);
        return s.phase === 'waiting' && /unreachable|retry|fetch/i.test(s.detail ?? '');
      }, 60_000, 100);
      await snap(tabs[0].page, 'relay-unreachable');
      const accepted = await Promise.all(tabs.map(async (t) => (await tabState(t.page)).stats!.updatesAccepted));
      relay = await startRelayProcess(port, dataDir, 20_000);
      const versionAfterRestart = await jobVersion(url);
      await waitFor('both tabs to have updates accepted by the restarted relay, and new versions', async () => {
        const now = await Promise.all(tabs.map(async (t) => (await tabState(t.page)).stats!.updatesAccepted));
        return now.every((n, i) => n > accepted[i]) && (await jobVersion(url)) >= versionAfterRestart + 2;
      }, 180_000);
      for (const t of tabs) expect((await tabState(t.page)).phase).not.toBe('error');
    } finally {
      for (const t of tabs) await t.context.close();
      relay?.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('without WebGPU the page says so plainly and trains on the CPU', async () => {
    const noGpu = await launchBrowser({ webgpu: false });
    const relay = await startWebRelay();
    try {
      const tab = await openTab(noGpu, relay.url);
      const s = await waitFor('an accepted update from the CPU path', async () => {
        const st = await tabState(tab.page);
        return st.stats?.updatesAccepted ? st : undefined;
      });
      expect(s.device?.backend).toBe('cpu');
      expect(s.device?.fallbackReason).toMatch(/WebGPU/);
      expect(s.stats!.gpuSteps).toBe(0);
      expect(s.stats!.samples).toBeGreaterThan(0);
      const note = tab.page.locator('#gpu-note');
      expect(await note.isVisible()).toBe(true);
      expect(await note.textContent()).toMatch(/No WebGPU here.*Chrome.*processor/s);
      expect(await tab.page.locator('#s-device').textContent()).toBe('CPU fallback (slower)');
      await snap(tab.page, 'no-webgpu');
    } finally {
      await noGpu.close();
      await relay.stop();
    }
  });

  it('a Node volunteer (Dawn) and a tab train the same job together', async () => {
    const relay = await startWebRelay();
    const stateDir = mkdtempSync(join(tmpdir(), 'tabtrain-node-volunteer-'));
    let out = '';
    const node = spawn(process.execPath, [join(root, 'bin/tabtrain.js'), 'volunteer', '--server', relay.url, '--state-dir', stateDir], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    node.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    node.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
    let tab: Tab | undefined;
    try {
      tab = await openTab(browser, relay.url);
      const nodeAccepted = () => Math.max(0, ...[...out.matchAll(/updates (\d+)\/\d+/g)].map((m) => Number(m[1])));
      await waitFor('accepted updates from both the Node volunteer and the tab', async () =>
        nodeAccepted() >= 1 && ((await tabState(tab!.page)).stats?.updatesAccepted ?? 0) >= 1, 280_000, 500);
      expect(out).toMatch(/device: WebGPU · .*swiftshader/i);
      expect((await tabState(tab.page)).device?.backend).toBe('webgpu');
      // the round closes on the pool after the acknowledgements: its version may come a moment later
      await waitFor('a version made from their updates', async () => (await jobVersion(relay.url)) >= 1, 60_000, 500);
      expect(await jobVersion(relay.url)).toBeGreaterThanOrEqual(1);
    } finally {
      node.kill('SIGINT');
      await new Promise((r) => node.once('exit', r));
      await tab?.context.close();
      await relay.stop();
      rmSync(stateDir, { recursive: true, force: true });
    }
  }, 300_000);
});
