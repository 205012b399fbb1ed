// Which shard a fresh task trains on: data locality without biasing the sample. A volunteer tells the
// relay which shards it holds when it asks for work; the relay gives it one of those when that shard has
// not been visited more than SLACK times beyond the least-visited shard, and the least-visited shard
// otherwise (which the volunteer then downloads once and keeps). This is BOINC's locality scheduling of
// sticky files (Anderson, "BOINC: A Platform for Volunteer Computing", 2020) with a bound that keeps the swarm's sample unbiased:
// a shard is only chosen while its count is ≤ min + SLACK, so every shard's count stays within
// [min, min + SLACK + 1] at all times. Over T fresh tasks on N shards each shard is therefore visited
// T/N ± (SLACK + 1) times (rows within a shard are drawn by the task's random seed as before): the
// dataset is sampled uniformly up to O(N·SLACK/T), however volunteers report (a volunteer that claims
// to hold one shard only gets it while it is within the bound, so it cannot skew what the job learns).
// Re-issues and spot checks repeat a chosen visit and are not counted again.
// Counts live in this relay's memory: after a restart they start again from zero, and relays sharing a
// database each balance their own tasks (their sum is off by at most relays × (SLACK + 1)); the store's
// shard cursor breaks ties, so relays and volunteers arriving together spread over the least-visited shards.

/** Visits a held shard may be ahead of the least-visited one and still be chosen for its holder. */
export const SLACK = 1;

export type ShardChoice = {
  /** The shard for a fresh task. `held`: the asker's shards (out-of-range entries are ignored);
   * `tieStart`: where the scan for the least-visited shard begins (the store's rotating cursor). */
  choose(jobId: string, shards: number, held: readonly number[], tieStart: () => Promise<number>): Promise<{ shard: number; held: boolean }>;
  /** Visits per shard so far (tests, the bench). */
  counts(jobId: string): readonly number[];
};

export function createShardChoice(): ShardChoice {
  const visits = new Map<string, number[]>();
  const countsOf = (jobId: string, shards: number): number[] => {
    let c = visits.get(jobId);
    if (!c || c.length !== shards) visits.set(jobId, (c = new Array<number>(shards).fill(0)));
    return c;
  };
  return {
    async choose(jobId, shards, held, tieStart) {
      const c = countsOf(jobId, shards);
      let min = Infinity;
      for (const n of c) min = Math.min(min, n);
      // the least-visited of the held shards, if it is within the bound
      let best = -1;
      for (const s of held) if (Number.isInteger(s) && s >= 0 && s < shards && c[s] <= min + SLACK && (best < 0 || c[s] < c[best])) best = s;
      if (best >= 0) {
        c[best]++;
        return { shard: best, held: true };
      }
      // scanned after the await, so choices made meanwhile are seen
      const start = (await tieStart()) % shards;
      let least = start;
      for (let k = 1; k < shards; k++) { const s = (start + k) % shards; if (c[s] < c[least]) least = s; }
      c[least]++;
      return { shard: least, held: false };
    },
    counts: (jobId) => visits.get(jobId) ?? [],
  };
}
