// Checkpoint retention: which versions keep their checkpoint (params + outer momentum) and which updates
// keep their payload once a round has applied them. A 1M-parameter job writes 8 MB of checkpoint per
// version: kept forever, a day of rounds every few seconds fills a disk.

/** The newest keepLast versions (never fewer than a job's staleness bound needs), every keepEvery-th,
 * and the version with the best held-out loss keep their checkpoints; older payloads go. With keepBytes,
 * a job's kept checkpoints are also held to that many bytes: the oldest go first (every keepEvery-th
 * too), never those the staleness bound needs, the best (the guardrail's rollback target) or a done
 * job's released version, so a job whose protected versions alone are bigger stays above it. */
export type Retention = { keepLast: number; keepEvery: number; keepBytes?: number };
export const defaultRetention: Retention = { keepLast: 64, keepEvery: 100 };

/** The newest version whose checkpoint may go after `version` was committed (≤ 0: none). Tasks based on
 * any version the staleness bound still accepts keep it: spot-check tie-breaks and usefulness read it. */
export const prunableUpTo = (version: number, r: Retention, stalenessBound: number): number =>
  version - Math.max(r.keepLast, stalenessBound + 1);

/** Versions from this one on are never dropped by bytes: the current one and every base the staleness
 * bound still accepts tasks of (what prunableUpTo keeps at the least). */
export const keepFromForBytes = (version: number, stalenessBound: number): number => version - stalenessBound;

/** Kept versions for an error message, runs folded: "0, 100, 200, 237–300". */
export function describeVersions(versions: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < versions.length;) {
    let j = i;
    while (j + 1 < versions.length && versions[j + 1] === versions[j] + 1) j++;
    parts.push(j - i >= 2 ? `${versions[i]}–${versions[j]}` : versions.slice(i, j + 1).join(', '));
    i = j + 1;
  }
  return parts.join(', ');
}

/** Why a version has no checkpoint: not made yet, or dropped by retention (saying which are kept). */
export function missingVersionMessage(jobId: string, version: number, current: number, kept: number[]): string {
  if (version > current) return `job ${jobId} has no version ${version} yet (current is ${current})`;
  return `job ${jobId} has no checkpoint of version ${version} any more: retention keeps the newest versions, every n-th and the best held-out loss (relay flags --keep-versions, --keep-every, --keep-bytes); kept: ${describeVersions(kept)}`;
}
