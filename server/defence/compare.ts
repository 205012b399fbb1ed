// Spot-check comparisons on the worker pool (server/pool/worker.ts): both copies of a spot-checked task
// decoded and compared there, not on the event loop (two model-sized decodes: 1.3 s at 31M parameters);
// with the relay's reference copy (a tie-break), each copy against it.
import type { Update } from '../../shared/codec/index.ts';
import { runOnPool } from '../pool/index.ts';
import { defaultTolerance } from './replication.ts';

export type Comparison = { agree: boolean; distance: number };

/** Without `reference`: one comparison, copy 0 against copy 1; with it: each copy against the reference. */
export async function compareCopies(n: number, copies: Uint8Array[], tolerance = defaultTolerance, reference?: Update): Promise<Comparison[]> {
  return runOnPool({ kind: 'compare', n, copies, tolerance, reference });
}
