// The volunteer loop's source chain (shared/volunteer/pieces.ts) on a real relay: pieces one volunteer
// holds serve another before the relay, checked by SHA-256; corrupted bytes from a peer are reported and
// the relay's used instead. The "peer" here is an in-process PeerSource over the pieces the first
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
  beforeAll(async () => { relay = await startRelay({ defaultJob: { steps: 2, updatesPerRound: 8, quorum: 8 } }); });
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

  it('a second volunteer takes the version the first holds from it, checked, and trains on it', async () => {
    const s = swarm();
    const a = await volunteer(s.source, 'a');
    expect(a.accepted).toBe(1);
    expect(a.paths.some((p) => p.endsWith('/versions/0/params'))).toBe(true);
    // the first one offered what it fetched: the version's params and its shard, named by their hashes
    expect(s.held.size).toBe(2);
    const b = await volunteer(s.source, 'b');
    expect(b.accepted).toBe(1);
    expect(s.log.served.length).toBeGreaterThanOrEqual(1);
    expect(b.paths.some((p) => p.includes('/params'))).toBe(false);
    expect(s.log.bad).toEqual([]);
  });

  it('corrupted bytes from a peer are reported and the relay\'s are used; the update is accepted', async () => {
    const honest = swarm();
    await volunteer(honest.source, 'c');
    const liar = swarm(true);
    for (const [h, b] of honest.held) liar.held.set(h, b);
    const d = await volunteer(liar.source, 'd');
    expect(d.accepted).toBe(1);
    expect(liar.log.served.length).toBeGreaterThanOrEqual(1);
    expect(liar.log.bad).toEqual(liar.log.served);
    expect(d.paths.some((p) => p.endsWith('/params'))).toBe(true);
  });
});
