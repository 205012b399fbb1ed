// Streams, not buffers, on a live relay: an upload body is spooled to disk as it arrives (the relay's memory
// does not grow by its size), spooled uploads train like any other, a params download streams from its
// file with its hash as ETag (304 when the client has it) and reads no momentum, retention by bytes keeps
// the staleness window and the rollback target, and /metrics reports the relay's disk use.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { defaultJobSpec } from '../../server/default-job.ts';
import { checkpointPath } from '../../server/store/checkpoint-files.ts';
import { paramCount } from '../../shared/models/config.ts';
import type { Task } from '../../shared/protocol/messages.ts';
import { registerSigned } from '../helpers/identity.ts';
import { evals, startRelay, startVolunteers, waitFor } from '../helpers/relay.ts';
import { codeOf, head, openRaw } from '../security/raw-http.ts';

// a full collection before each reading, so garbage not yet collected does not read as memory held
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const held = () => { gc(); const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers; };

const MiB = 1 << 20;
const uploadsDir = (dataDir: string) => join(dataDir, 'uploads');
const spooledBytes = (dataDir: string) => readdirSync(uploadsDir(dataDir)).reduce((a, f) => a + statSync(join(uploadsDir(dataDir), f)).size, 0);

describe('streamed uploads', () => {
  it('spools a large body to disk as it arrives: the relay holds a small part of it, and the file goes with the request', async () => {
    const relay = await startRelay({ defaultJob: false });
    try {
      // a model whose fp32 update is about 40 MB, so its tasks take a body that large
      const model = { kind: 'mlp' as const, inputs: 784, hidden: [12_000], classes: 10 };
      await relay.app.scheduler.createJob('big', { ...defaultJobSpec(), model }, 'running');
      const v = await registerSigned(relay.url);
      const r = await v.askForTask('big');
      expect(r.status).toBe(200);
      const task = await r.json() as Task;
      const total = 4 * paramCount(model); // 37.7 MB: within the task's cap
      const c = await openRaw(relay.url);
      await c.write(head('POST', `/api/tasks/${task.taskId}/update`, { 'content-type': 'application/octet-stream', 'content-length': String(total) }));
      const before = held();
      // a frame whose header says nothing useful: the answer will be a refusal, once the body is whole
      const header = Buffer.from('{}');
      const start = Buffer.alloc(8 + header.length);
      start.write('TTU1', 0, 'latin1');
      start.writeUInt32LE(header.length, 4);
      header.copy(start, 8);
      await c.write(start);
      const piece = Buffer.alloc(MiB); // one buffer sent again and again: the client holds 1 MiB
      let sent = start.length;
      while (sent + MiB < total - 4 * MiB) { await c.write(piece); sent += MiB; }
      // most of the body has arrived: it is on disk, not in memory
      await waitFor(async () => spooledBytes(relay.dataDir), (n) => n >= sent - MiB, 50);
      const grew = held() - before;
      expect(sent).toBeGreaterThan(30 * MiB);
      expect(grew).toBeLessThan(sent / 4);
      while (sent < total) { const n = Math.min(MiB, total - sent); await c.write(piece.subarray(0, n)); sent += n; }
      const a = await c.answer;
      expect(a.status).toBe(400);
      expect(codeOf(a)).toBe('TT_ERR_BAD_FRAME');
      await waitFor(async () => spooledBytes(relay.dataDir), (n) => n === 0, 50);
      // a body cut off halfway leaves no file behind either
      const cut = await openRaw(relay.url);
      await cut.write(head('POST', `/api/tasks/${task.taskId}/update`, { 'content-type': 'application/octet-stream', 'content-length': String(total) }));
      for (let i = 0; i < 4; i++) await cut.write(piece);
      await waitFor(async () => spooledBytes(relay.dataDir), (n) => n >= 3 * MiB, 50);
      cut.socket.destroy();
      await waitFor(async () => readdirSync(uploadsDir(relay.dataDir)).length, (n) => n === 0, 50);
    } finally {
      await relay.stop();
    }
  }, 120_000);

  it('spooled uploads are accepted and trained on like any other', async () => {
    // every body spooled, however small: the file path is the one under test
    const relay = await startRelay({ defaultJob: { updatesPerRound: 2, quorum: 1 }, uploadSpoolBytes: 0 });
    const vs = startVolunteers(relay.url, 2);
    try {
      await waitFor(() => evals(relay.url), (es) => es.some((e) => e.version >= 2));
      await vs.stop();
      expect(vs.events.filter((e) => e.type === 'error')).toEqual([]);
      // two rounds of two updates each, every one of them spooled
      expect(relay.app.store.listUpdates('mnist-mlp').filter((u) => relay.app.store.getTask(u.taskId)!.state === 'accepted').length).toBeGreaterThanOrEqual(4);
      await waitFor(async () => readdirSync(uploadsDir(relay.dataDir)).length, (n) => n === 0, 50);
    } finally {
      await vs.stop();
      await relay.stop();
    }
  }, 120_000);
});

describe('checkpoints as files on a live relay', () => {
  it('streams params with an ETag and no momentum read, keeps the job under --keep-bytes, and reports disk use', async () => {
    const stalenessBound = 2;
    const spec = defaultJobSpec();
    const n = paramCount(spec.model);
    // a version is params + momentum (+ residual and delta when published): 8–13 bytes a parameter;
    // room for about five
    const keepBytes = 64 * n;
    const relay = await startRelay({
      defaultJob: { updatesPerRound: 2, quorum: 1, stalenessBound }, largeCheckpointBytes: 1000,
      retention: { keepLast: 64, keepEvery: 100, keepBytes },
    });
    const vs = startVolunteers(relay.url, 2);
    try {
      await waitFor(() => evals(relay.url), (es) => es.length >= 10);
      await vs.stop();
      const { version } = relay.app.store.getJob('mnist-mlp')!;
      const kept = relay.app.store.listVersions('mnist-mlp');
      // the staleness window (and the current version) always stays; the rest is held to the byte budget
      for (let v = version - stalenessBound; v <= version; v++) expect(kept).toContain(v);
      expect(kept.length).toBeLessThan(version + 1);
      // at most one version over: the last round's, committed before retention ran (which of the older
      // ones stays, the rollback target among them, is tested on both stores in test/store/large-checkpoints.test.ts)
      expect(relay.app.store.checkpointBytes('mnist-mlp')).toBeLessThanOrEqual(keepBytes + 16 * n);

      const url = `${relay.url}/api/jobs/mnist-mlp/versions/${version}/params`;
      const res = await fetch(url);
      expect(res.status).toBe(200);
      const body = new Uint8Array(await res.arrayBuffer());
      const hash = createHash('sha256').update(body).digest('hex');
      expect(body.byteLength).toBe(4 * n);
      expect(res.headers.get('x-tabtrain-hash')).toBe(hash);
      expect(res.headers.get('etag')).toBe(`"${hash}"`);
      const again = await fetch(url, { headers: { 'if-none-match': `"${hash}"` } });
      expect(again.status).toBe(304);
      expect((await again.arrayBuffer()).byteLength).toBe(0);

      // the download reads no momentum: with the momentum file gone, params still stream whole
      const momentum = checkpointPath(join(relay.dataDir, 'checkpoints'), 'mnist-mlp', version, 'momentum');
      expect(existsSync(momentum)).toBe(true);
      rmSync(momentum);
      const without = await fetch(url);
      expect(without.status).toBe(200);
      expect(createHash('sha256').update(new Uint8Array(await without.arrayBuffer())).digest('hex')).toBe(hash);

      const metrics = await (await fetch(`${relay.url}/metrics`)).text();
      const disk = (part: string) => Number(new RegExp(`^tabtrain_disk_bytes\\{part="${part}"\\} (\\S+)$`, 'm').exec(metrics)?.[1]);
      expect(disk('checkpoints')).toBeGreaterThan(4 * n);
      expect(disk('database')).toBeGreaterThan(0);
      expect(disk('data_dir')).toBeGreaterThanOrEqual(disk('checkpoints') + disk('database') + disk('payloads'));
    } finally {
      await vs.stop();
      await relay.stop();
    }
  }, 180_000);
});
