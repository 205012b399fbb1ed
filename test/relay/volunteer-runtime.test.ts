// The one volunteer runtime (shared/volunteer/runtime.ts) that the tab's worker and the Node volunteer
// both run: against a real relay it trains with a GPU backend that cannot build the model by falling back
// to the CPU (saying why), meters what it sent, and carries credit over to the next session.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFileStore } from '../../server/volunteer/file-store.ts';
import type { Phase } from '../../shared/volunteer/events.ts';
import { kvLoopStore } from '../../shared/volunteer/kv-store.ts';
import { createVolunteerRuntime, type Backend } from '../../shared/volunteer/runtime.ts';
import type { DeviceInfo } from '../../shared/volunteer/status.ts';
import { Throttle } from '../../shared/volunteer/throttle.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';

/** A GPU whose engine cannot hold the job's model, as a device with small limits answers. */
const gpuThatCannotBuild: Backend = {
  device: { backend: 'webgpu', description: 'a small GPU' },
  makeTrainer: async () => { throw new Error('buffer mlp.W0 needs 802816 bytes; the device allows 65536'); },
};

describe('volunteer runtime', () => {
  let relay: TestRelay;
  let dir: string;
  beforeAll(async () => {
    relay = await startRelay({ defence: { replication: { baseRate: 0 } } });
    dir = mkdtempSync(join(tmpdir(), 'tabtrain-runtime-'));
  });
  afterAll(async () => {
    await relay.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const session = async (maxTasks: number) => {
    const db = await openFileStore(dir);
    const devices: DeviceInfo[] = [], phases: Phase[] = [];
    const rt = await createVolunteerRuntime({
      server: relay.url, jobId: 'mnist-mlp', maxTasks, backend: gpuThatCannotBuild, db, store: kvLoopStore(db, 0), creditKey: 'credit:0',
      throttle: new Throttle(), signal: new AbortController().signal, fetch: (u, i) => fetch(u, i), agent: (b) => `runtime-test (${b})`,
      onPhase: (p) => phases.push(p), onDevice: (d) => devices.push(d), onRestart: (err) => { throw err; },
    });
    return { stats: await rt.run(), devices, phases, db };
  };

  it('falls back to the CPU when the GPU cannot build the model, and still trains', async () => {
    const { stats, devices, phases } = await session(2);
    expect(devices).toHaveLength(1);
    expect(devices[0]).toMatchObject({ backend: 'cpu' });
    expect(devices[0].fallbackReason).toMatch(/WebGPU engine failed here .*device allows 65536/);
    expect(stats.updatesAccepted).toBe(2);
    expect(stats.credit).toBe(stats.samples);
    expect(stats.bytesSent).toBeGreaterThan(0);
    expect(phases).toEqual(expect.arrayContaining(['training', 'stopped']));
  });

  it('carries credit over to the next session from its storage', async () => {
    const earned = await (await openFileStore(dir)).getRecord<number>('credit:0');
    expect(earned).toBeGreaterThan(0);
    const { stats } = await session(1);
    expect(stats.updatesAccepted).toBe(1);
    expect(stats.credit).toBe(earned! + stats.samples);
  });
});
