// Checkpoint retention on a live relay: while simulated volunteers train, old checkpoints go (but every
// n-th, the best held-out loss and what the staleness bound still needs), a dropped version's 404 says
// which are kept, and the relay's flags refuse a retention that would keep nothing.
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { byteSize } from '../../server/cli/sizes.ts';
import { describeVersions } from '../../server/store/retention.ts';
import { evals, startRelay, startVolunteers, waitFor } from '../helpers/relay.ts';

describe('retention', () => {
  it('keeps the newest versions (at least the staleness bound\'s), every n-th and the best, while training goes on', async () => {
    // keepLast 2 is under what stalenessBound 3 needs: the newest 4 versions stay
    const relay = await startRelay({ defaultJob: { updatesPerRound: 2, quorum: 1, stalenessBound: 3 }, retention: { keepLast: 2, keepEvery: 5 } });
    const vs = startVolunteers(relay.url, 2);
    try {
      await waitFor(() => evals(relay.url), (es) => es.length >= 14);
      await vs.stop();
      expect(vs.events.filter((e) => e.type === 'error')).toEqual([]);
      const { version } = relay.app.store.getJob('mnist-mlp')!;
      const es = relay.app.store.listEvals('mnist-mlp');
      const best = es.reduce((a, e) => (e.loss < a.loss ? e : a)).version;
      // retention ran after the last round, before that round's eval: the best it knew was among these
      const expected = Array.from({ length: version + 1 }, (_, v) => v).filter((v) => v === 0 || v % 5 === 0 || v > version - 4 || v === best);
      const kept = relay.app.store.listVersions('mnist-mlp');
      expect(kept).toEqual(expect.arrayContaining(expected.filter((v) => v !== best)));
      expect(kept.length).toBeLessThanOrEqual(expected.length + 1);
      expect(kept.length).toBeLessThan(version + 1);

      const gone = Array.from({ length: version }, (_, v) => v).find((v) => !kept.includes(v))!;
      const r = await fetch(`${relay.url}/api/jobs/mnist-mlp/versions/${gone}/params`);
      expect(r.status).toBe(404);
      const message = (await r.json()).error.message as string;
      expect(message).toMatch(new RegExp(`no checkpoint of version ${gone} any more.*--keep-versions`));
      expect(message.endsWith(`kept: ${describeVersions(kept)}`)).toBe(true);
      expect((await fetch(`${relay.url}/api/jobs/mnist-mlp/versions/5/params`)).status).toBe(200);
      expect((await fetch(`${relay.url}/api/jobs/mnist-mlp/versions/${version}/params`)).status).toBe(200);
    } finally {
      await vs.stop();
      await relay.stop();
    }
  });

  it('reads --keep-bytes sizes in bytes, decimal and binary units', () => {
    const size = byteSize('--keep-bytes');
    expect([size('500000000'), size('20GB'), size('1.5 kB'), size('512MiB'), size('2gib')]).toEqual([5e8, 2e10, 1500, 512 * 2 ** 20, 2 * 2 ** 30]);
  });

  it('tabtrain start refuses --keep-versions 0, naming the flag', async () => {
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, ['bin/tabtrain.js', 'start', '--keep-versions', '0'], (err, _out, stderr) => resolve({ code: err ? Number(err.code) : 0, stderr }));
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--keep-versions must be an integer ≥ 1, got "0"/);
  });

  it('tabtrain start refuses a --keep-bytes that is no size, naming the flag', async () => {
    for (const bad of ['0', '12XB', 'lots']) {
      const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
        execFile(process.execPath, ['bin/tabtrain.js', 'start', '--keep-bytes', bad], (err, _out, stderr) => resolve({ code: err ? Number(err.code) : 0, stderr }));
      });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`--keep-bytes must be a size of at least 1 byte, like 500000000, 20GB or 512MiB; got "${bad}"`);
    }
  });
});
