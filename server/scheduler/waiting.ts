// Who was told "no work now" lately, per job. A task ahead (scheduler.leaseTask) goes to a busy
// volunteer only when nobody else is waiting: the round's next work then goes fresh to those waiting.
// In memory only: a restart forgets it, and the next refusals rebuild it within the window.

export type WaitingList = ReturnType<typeof createWaitingList>;

/** windowMs: how long a refusal counts as waiting (volunteers told "no work" ask again within ~1 s). */
export function createWaitingList(windowMs = 2_000) {
  /** Per job, volunteer → time of its last refusal, oldest first (a refresh re-inserts at the end). */
  const byJob = new Map<string, Map<string, number>>();

  /** Drops refusals older than the window (they are at the front); true if someone other than `me` is left. */
  const prune = (m: Map<string, number>, t: number, me?: string): boolean => {
    for (const [v, at] of m) {
      if (t - at <= windowMs) return [...m.keys()].some((k) => k !== me);
      m.delete(v);
    }
    return false;
  };

  return {
    refused(jobId: string, volunteerId: string, t: number): void {
      let m = byJob.get(jobId);
      if (!m) byJob.set(jobId, (m = new Map()));
      m.delete(volunteerId);
      m.set(volunteerId, t);
      prune(m, t);
    },
    /** Volunteers told "no work" within the window (the dashboard's "waiting"). */
    count(jobId: string, t: number): number {
      const m = byJob.get(jobId);
      if (!m) return 0;
      prune(m, t);
      return m.size;
    },
    othersWaiting(jobId: string, volunteerId: string, t: number): boolean {
      const m = byJob.get(jobId);
      return m !== undefined && prune(m, t, volunteerId);
    },
  };
}
