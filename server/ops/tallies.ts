// Running totals for the dashboard, read incrementally: tasks and updates only ever gain rows, so each
// snapshot reads the rows added since the previous one (by the store's position, tasksSince/updatesSince) instead of aggregating every task and
// update ever stored (1.1 s per snapshot at a million updates, all of it on the relay's event loop).
// Nothing is written for it: counting triggers cost intake 0.1–0.2 ms an update. Credit is the samples of
// every accepted update, as the volunteer's own page counts it: a later rollback is no fault of theirs.
import type { RelayStore } from '../store/types.ts';

/** Rows read per step; the relay's event loop gets a turn between steps of a long catch-up. */
const CHUNK = 20_000;

type Credit = { credit: number; updates: number };
export type Tallies = {
  /** accepted updates and their payload bytes, by job */
  updates: Map<string, { n: number; bytes: number }>;
  /** tasks ever leased */
  leased: number;
  /** samples and updates per job over the window */
  recent: Map<string, { samples: number; updates: number }>;
  /** volunteers that leased a task within the active window, by device */
  devices: { device: string; volunteers: number }[];
  leaderboard: ({ volunteerId: string } & Credit)[];
};

/** One volunteer's work on one job, for the job page. */
export type JobVolunteer = { volunteerId: string; device: string | null; tasks: number; accepted: number; lastSeen: number; samples: number };
export type TallyReader = ReturnType<typeof createTallies>;

/** The totals live in this process, rebuilt from the store after a start (each relay of several keeps its own). */
export function createTallies(store: RelayStore, o: { windowMs: number; activeMs: number; top?: number }) {
  const newUpdates = async (after: number, limit: number) => (await store.updatesSince(after, limit))
    .map((u) => ({ id: u.seq, job: u.jobId, volunteer: u.volunteerId, samples: u.samples, bytes: u.bytes, at: u.acceptedAt }));
  const newTasks = async (after: number, limit: number) => (await store.tasksSince(after, limit))
    .map((t) => ({ id: t.seq, job: t.jobId, volunteer: t.volunteerId, at: t.issuedAt }));

  let updateCursor = 0, taskCursor = 0, leased = 0;
  const perJob = new Map<string, { n: number; bytes: number }>();
  const credit = new Map<string, Credit>();
  const window: { at: number; job: string; samples: number }[] = [];
  const lastLease = new Map<string, number>();
  const byJob = new Map<string, Map<string, Omit<JobVolunteer, 'device'>>>();
  const workOf = (job: string, volunteerId: string) => {
    let m = byJob.get(job);
    if (!m) byJob.set(job, (m = new Map()));
    let w = m.get(volunteerId);
    if (!w) m.set(volunteerId, (w = { volunteerId, tasks: 0, accepted: 0, lastSeen: 0, samples: 0 }));
    return w;
  };

  const turn = () => new Promise<void>((r) => setImmediate(r));

  // one read at a time: a caller arriving during a long catch-up shares it instead of counting rows twice
  let inFlight: Promise<Tallies> | undefined;
  const current = (now: number): Promise<Tallies> => (inFlight ??= read(now).finally(() => { inFlight = undefined; }));
  return {
    read: current,
    /** The job's volunteers with the most samples first (at most `limit`), brought up to date first. */
    async volunteersOf(jobId: string, limit = 100): Promise<JobVolunteer[]> {
      await current(Date.now());
      return Promise.all([...(byJob.get(jobId)?.values() ?? [])].sort((a, b) => b.samples - a.samples).slice(0, limit)
        .map(async (w) => ({ ...w, device: (await store.volunteerDevice(w.volunteerId)) ?? null })));
    },
  };

  async function read(now: number): Promise<Tallies> {
    for (;;) {
      const rows = await newUpdates(updateCursor, CHUNK);
      for (const r of rows) {
        const j = perJob.get(r.job) ?? { n: 0, bytes: 0 };
        j.n++; j.bytes += r.bytes;
        perJob.set(r.job, j);
        const c = credit.get(r.volunteer) ?? { credit: 0, updates: 0 };
        c.credit += r.samples; c.updates++;
        credit.set(r.volunteer, c);
        const w = workOf(r.job, r.volunteer);
        w.accepted++; w.samples += r.samples;
        if (r.at > now - o.windowMs) window.push({ at: r.at, job: r.job, samples: r.samples });
        updateCursor = r.id;
      }
      if (rows.length < CHUNK) break;
      await turn();
    }
    for (;;) {
      const rows = await newTasks(taskCursor, CHUNK);
      for (const r of rows) {
        leased++;
        const w = workOf(r.job, r.volunteer);
        w.tasks++; w.lastSeen = Math.max(w.lastSeen, r.at);
        if (r.at > now - o.activeMs) lastLease.set(r.volunteer, Math.max(r.at, lastLease.get(r.volunteer) ?? 0));
        taskCursor = r.id;
      }
      if (rows.length < CHUNK) break;
      await turn();
    }

    let drop = 0;
    while (drop < window.length && window[drop].at <= now - o.windowMs) drop++;
    window.splice(0, drop);
    const recent = new Map<string, { samples: number; updates: number }>();
    for (const w of window) {
      const r = recent.get(w.job) ?? { samples: 0, updates: 0 };
      r.samples += w.samples; r.updates++;
      recent.set(w.job, r);
    }

    const byDevice = new Map<string, number>();
    for (const [v, at] of lastLease) {
      if (at <= now - o.activeMs) { lastLease.delete(v); continue; }
      const device = (await store.volunteerDevice(v)) || 'unknown';
      byDevice.set(device, (byDevice.get(device) ?? 0) + 1);
    }
    const devices = [...byDevice].map(([device, volunteers]) => ({ device, volunteers })).sort((a, b) => b.volunteers - a.volunteers);

    // the top few by credit in one pass (a full sort of every volunteer ever would cost more each second)
    const top = o.top ?? 10;
    const leaderboard: Tallies['leaderboard'] = [];
    for (const [volunteerId, c] of credit) {
      if ((leaderboard.length === top && c.credit <= leaderboard[top - 1].credit)) continue;
      let i = leaderboard.length;
      while (i > 0 && leaderboard[i - 1].credit < c.credit) i--;
      leaderboard.splice(i, 0, { volunteerId, ...c });
      if (leaderboard.length > top) leaderboard.pop();
    }

    return { updates: perJob, leased, recent, devices, leaderboard };
  }
}
