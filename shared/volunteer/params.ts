// A task's base parameters, by the cheapest way there: the cache (by version hash); else the published
// deltas from the newest version this volunteer holds, when the relay still has the whole chain and it is
// fewer bytes than the parameters; else the parameters. Deltas and parameters are pieces (./pieces.ts):
// taken from peers when they have them, from the relay otherwise. Every delta is checked against the
// manifest's SHA-256 and the result against the task's version hash, and any mismatch falls back to the
// parameters, so a broken chain costs a download, never a wrong model.
// A volunteer that holds nothing of the job starts from version 0 made here: every relay makes a job's
// version 0 as initParams(model, seed 1) unless it was given one, so that is tried (and checked against
// version 0's hash, which the manifest gives as the first delta's base) before the model is downloaded.
import { applyVersionDelta } from '../codec/version-delta.ts';
import { initParams } from '../models/config.ts';
import type { Task } from '../protocol/messages.ts';
import type { RelayClient } from './client.ts';
import { pieceFetcher, sha256Hex, type PieceFetcher } from './pieces.ts';
import type { LoopStore } from './store.ts';

export { sha256Hex } from './pieces.ts';

/** Where a task's parameters came from, for the meter and the benchmarks. */
export type ParamsSource = { source: 'cache' | 'seed' | 'deltas' | 'params'; deltas: number };

const asBytes = (p: Float32Array) => new Uint8Array(p.buffer, p.byteOffset, p.byteLength);
/** fp32 values of a piece (copied when its bytes do not start on a 4-byte boundary). */
const asFloats = (b: Uint8Array) => b.byteOffset % 4 === 0 ? new Float32Array(b.buffer, b.byteOffset, b.byteLength >> 2) : new Float32Array(b.slice().buffer);

export async function paramsFor(client: RelayClient, store: LoopStore, task: Task, pieces: PieceFetcher = pieceFetcher(undefined)): Promise<{ params: Float32Array } & ParamsSource> {
  const cached = await store.getParams(task.versionHash);
  if (cached) {
    pieces.offer(task.versionHash, cached);
    return { params: cached, source: 'cache', deltas: 0 };
  }
  const chained = task.baseVersion === 0 ? await seeded(task, task.versionHash) : await viaDeltas(client, store, task, pieces);
  let got: { params: Float32Array } & ParamsSource;
  if (chained) {
    got = chained;
  } else {
    const bytes = await pieces.fetch(task.versionHash, 4 * task.paramCount, async () => asBytes((await client.params(task.jobId, task.baseVersion)).params));
    if (bytes.length % 4 !== 0) throw new Error(`params of version ${task.baseVersion} are ${bytes.length} bytes, not a whole number of fp32 values`);
    const params = asFloats(bytes);
    const hash = await sha256Hex(params);
    if (hash !== undefined && hash !== task.versionHash) throw new Error(`params of version ${task.baseVersion} hash to ${hash}, the task says ${task.versionHash}`);
    got = { params, source: 'params', deltas: 0 };
  }
  if (got.params.length !== task.paramCount) throw new Error(`params of version ${task.baseVersion} have ${got.params.length} values, the task says ${task.paramCount}`);
  await store.putParams(task.versionHash, got.params);
  await store.putNewest?.(task.jobId, { version: task.baseVersion, hash: task.versionHash });
  pieces.offer(task.versionHash, got.params);
  return got;
}

/** The seed every relay makes version 0 with when it is given none (server/scheduler/scheduler.ts). */
const INIT_SEED = 1;

/** Version 0 made here, when it hashes to `hash`. */
async function seeded(task: Task, hash: string): Promise<({ params: Float32Array } & ParamsSource) | undefined> {
  if (!globalThis.crypto?.subtle) return undefined;
  const params = initParams(task.model, INIT_SEED);
  return params.length === task.paramCount && (await sha256Hex(params)) === hash ? { params, source: 'seed', deltas: 0 } : undefined;
}

async function viaDeltas(client: RelayClient, store: LoopStore, task: Task, pieces: PieceFetcher): Promise<({ params: Float32Array } & ParamsSource) | undefined> {
  if (!globalThis.crypto?.subtle) return undefined;
  const newest = await store.getNewest?.(task.jobId);
  const held = newest && await store.getParams(newest.hash);
  let have = held ? newest : undefined;
  let base = held;
  if (have && have.version >= task.baseVersion) return undefined;
  const m = await client.manifest(task.jobId, task.baseVersion, have?.version ?? 0);
  const from = have?.version ?? 0;
  const chain = m.deltas.filter((d) => d.version > from);
  const bytes = chain.reduce((a, d) => a + d.bytes, 0);
  if (m.hash !== task.versionHash || chain.length !== task.baseVersion - from) return undefined;
  if (!have) {
    // nothing held: version 0 made here, when the chain from it is worth taking (its first delta's base
    // is version 0's hash)
    if (bytes >= m.paramsBytes && !pieces.withPeers) return undefined;
    const v0 = await seeded(task, chain[0].baseHash);
    if (!v0) return undefined;
    have = { version: 0, hash: chain[0].baseHash };
    base = v0.params;
  }
  if (!base || chain[0].baseHash !== have.hash) return undefined;
  if (bytes >= m.paramsBytes) {
    // the params are fewer bytes; but with peers, a chain costs the relay only the deltas no peer holds
    // (a new version's params are held by nobody until someone has built them): params from a peer if
    // one has them, else the chain
    if (!pieces.withPeers) return undefined;
    const got = await pieces.fromPeers(task.versionHash, m.paramsBytes);
    if (got && got.byteLength === m.paramsBytes) return { params: asFloats(got), source: 'params', deltas: 0 };
  }
  pieces.will(task.versionHash);
  let p = base;
  for (const d of chain) {
    const delta = await pieces.fetch(d.sha256, d.bytes, () => client.delta(task.jobId, d.version));
    if ((await sha256Hex(delta)) !== d.sha256) return undefined;
    p = applyVersionDelta(p, delta);
  }
  return (await sha256Hex(p)) === task.versionHash ? { params: p, source: 'deltas', deltas: chain.length } : undefined;
}
