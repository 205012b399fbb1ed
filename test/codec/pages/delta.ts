// Rebuilds a version in the page from a base and published deltas, with the same shared code a tab
// runs, and returns the SHA-256 the relay's version hash is compared with.
import { applyVersionDelta } from '../../../shared/codec/version-delta.ts';
import { initParams, type ModelConfig } from '../../../shared/models/config.ts';
import { sha256Hex } from '../../../shared/volunteer/params.ts';

declare global {
  interface Window {
    rebuild(base: number[], deltas: number[][]): Promise<string | undefined>;
    /** version 0 as a volunteer makes it from the seed (shared/volunteer/params.ts) */
    seeded(model: ModelConfig, seed: number): Promise<string | undefined>;
    rebuildReady: boolean;
  }
}

window.seeded = async (model, seed) => sha256Hex(initParams(model, seed));

window.rebuild = async (base, deltas) => {
  let p: Float32Array = new Float32Array(new Uint8Array(base).buffer);
  for (const d of deltas) p = applyVersionDelta(p, new Uint8Array(d));
  return sha256Hex(p);
};
window.rebuildReady = true;
