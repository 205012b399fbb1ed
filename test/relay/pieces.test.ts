// The volunteer loop's source chain (shared/volunteer/pieces.ts) on a real relay: pieces one volunteer
// holds (shards here: each volunteer makes version 0 from its seed) serve another before the relay,
// checked by SHA-256; corrupted bytes from a peer are reported and the relay's used instead. The "peer" here is an in-process PeerSource over the pieces the first
// volunteer offered (the tabs' WebRTC source is tested in test/web/peer-sharing.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCpuTrainer } from '../../shared/train/cpu.ts';
import { runVolunteer, type VolunteerEvent } from '../../shared/volunteer/loop.ts';
import type { PeerSource } from '../../shared/volunteer/pieces.ts';
import { memoryLoopStore } from '../../shared/volunteer/store.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';

/** Pieces offered by volunteers, served back to any who ask; `corrupt` flips a byte of each. */
function swarm(corrupt = false) {
  const held = new Map<string, Uint8Array>();
  const log = { served: [] as string[], bad: [] as string[] };
  const source: PeerSource = {
    get: async (hash) => {
      const b = held.get(hash);
      if (!b) return undefined;
      log.served.push(hash);
      const out = b.slice();
      if (corrupt) out[out.length >> 1] ^= 0xff;
      return out;
    },
    bad: (hash) => { log.bad.push(hash); },
    have: (hash, bytes) => { held.set(hash, bytes.slice()); },
  };
  return { held, log, source };
}

describe('pieces from peers before the relay', () => {
  let relay: TestRelay;
  beforeAll(async () => { relay = await startRelay({ defaultJob: { steps: 2, updatesPerRound: 64, quorum: 64 } }); });
  afterAll(async () => { await relay?.stop(); });

  const volunteer = async (peers: PeerSource, name: string) => {
    const paths: string[] = [];
    const events: VolunteerEvent[] = [];
    await runVolunteer({
      server: relay.url, createTrainer: createCpuTrainer, store: memoryLoopStore(), signal: new AbortController().signal,
      jobId: 'mnist-mlp', agent: name, maxTasks: 1, peers, onEvent: (e) => events.push(e),
      fetch: (u, init) => { paths.push(new URL(u).pathname); return fetch(u, init); },
    });
    return { paths, events, accepted: events.filter((e) => e.type === 'uploaded' && e.ack.accepted).length };
  };
  /** Volunteers take tasks until the swarm holds all 8 MNIST shards and version 0 (each new task goes to
   * a least-visited shard, so the next one's shard is then held by a peer). */
  const fill = async (peers: PeerSource, held: Map<string, Uint8Array>, name: string) => {
    for (let i = 0; held.size < 9; i++) {
      if (i >= 24) throw new Error(`the swarm holds ${held.size} pieces after ${i} volunteers`);
      expect((await volunteer(peers, `${name}-${i}`)).accepted).toBe(1);
    }
  };

  it('a second volunteer takes the shard the first holds from it, checked, and trains on it', async () => {
    const s = swarm();
    const a = await volunteer(s.source, 'a');
    expect(a.accepted).toBe(1);
    // version 0 is made by each volunteer from the job's seed (shared/volunteer/params.ts): never downloaded
    expect(a.paths.some((p) => p.endsWith('/params'))).toBe(false);
    expect(a.paths.some((p) => /\/shards\/\d+$/.test(p))).toBe(true);
    // the first one offered what it holds: the version's params and its shard, named by their hashes
    expect(s.held.size).toBe(2);
    await fill(s.source, s.held, 'a');
    const b = await volunteer(s.source, 'b');
    expect(b.accepted).toBe(1);
    expect(s.log.served.length).toBeGreaterThanOrEqual(1);
    expect(b.paths.some((p) => /\/shards\/\d+$/.test(p))).toBe(false);
    expect(s.log.bad).toEqual([]);
  });

  it('corrupted bytes from a peer are reported and the relay\'s are used; the update is accepted', async () => {
    const honest = swarm();
    await fill(honest.source, honest.held, 'c');
    const liar = swarm(true);
    for (const [h, b] of honest.held) liar.held.set(h, b);
    const d = await volunteer(liar.source, 'd');
    expect(d.accepted).toBe(1);
    expect(liar.log.served.length).toBeGreaterThanOrEqual(1);
    expect(liar.log.bad).toEqual(liar.log.served);
    expect(d.paths.some((p) => /\/shards\/\d+$/.test(p))).toBe(true);
  });
});
