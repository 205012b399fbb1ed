// The live network dashboard: one server-sent event per second from /api/ops/stream (snapshot of
// server/ops/snapshot.ts), drawn as figures, uPlot charts and tables. Read-only; needs no token.
import './style.css';
import { bytes, count, rate, sig as sigDigits } from '../../shared/util/format.ts';
import { evalCharts, LineChart, type EvalPoint } from './charts.ts';

type Snapshot = {
  at: number;
  volunteers: { registered: number; active: number; devices: { device: string; volunteers: number }[] };
  tasks: { leased: number; inFlight: number; expired: number; accepted: number; rejected: number };
  throughput: { samplesPerSec: number; tokensPerSec: number; gflops: number; windowSec: number };
  updates: { accepted: number; refused: { reason: string; count: number }[] };
  bytes: { in: number; out: number; updates: number; denseEquivalent: number; compressionRatio: number; downloadsFromRelay: number; downloadsFromPeers: number };
  jobs: { jobId: string; name: string; status: string; version: number; model: string; researcher: string; evals: EvalPoint[]; evalCount: number;
    finish?: { rule: string; reason: string; releasedVersion: number; loss: number | null; accuracy: number | null } }[];
  leaderboard: { volunteerId: string; credit: number; updates: number }[];
  swarm?: { training: number; waiting: number; roundSize: number; roundSeconds: number; staleness: { le: string; count: number }[] };
  health: { eventLoopLagMs: number; rssBytes: number; heapUsedBytes: number; disk: { dataDir: number; database: number; payloads: number; checkpoints: number; sharedDatabase?: number }; queueDepth: number; pendingUpdates: number; auditEntries: number; uptimeSec: number };
  history?: { at: number; samplesPerSec: number; tokensPerSec: number; gflops: number; active: number }[];
};

const $ = (id: string) => document.getElementById(id)!;
const text = (id: string, s: string) => { $(id).textContent = s; };
/** Small figures (a tiny model's GFLOP/s) keep their significant digits instead of rounding to 0.00. */
const sig = (n: number) => (n === 0 ? '0' : n < 0.01 ? n.toExponential(2) : rate(n));
const esc = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

const throughput = new LineChart($('chart-throughput'), {
  title: 'Network throughput', x: 'time', height: 220,
  series: [{ label: 'samples/s', stroke: '#2f6f4f' }, { label: 'tokens/s', stroke: '#3a6ea5', scale: 'right' }],
});
const history: NonNullable<Snapshot['history']> = [];
const jobViews = new Map<string, { el: HTMLElement; draw: (e: EvalPoint[]) => void }>();

function render(s: Snapshot): void {
  if (s.history) history.splice(0, history.length, ...s.history);
  else history.push({ at: s.at, samplesPerSec: s.throughput.samplesPerSec, tokensPerSec: s.throughput.tokensPerSec, gflops: s.throughput.gflops, active: s.volunteers.active });
  if (history.length > 600) history.splice(0, history.length - 600);

  text('s-active', count(s.volunteers.active));
  text('s-registered', count(s.volunteers.registered));
  text('s-tasks', `${count(s.tasks.leased)} / ${count(s.tasks.inFlight)} / ${count(s.tasks.expired)}`);
  text('s-samples', sig(s.throughput.samplesPerSec));
  text('s-tokens', sig(s.throughput.tokensPerSec));
  text('s-gflops', sig(s.throughput.gflops));
  text('s-accepted', count(s.updates.accepted));
  text('s-refused', count(s.updates.refused.reduce((a, r) => a + r.count, 0)));
  text('s-bytes', `${bytes(s.bytes.in)} / ${bytes(s.bytes.out)}`);
  const dl = s.bytes.downloadsFromRelay + s.bytes.downloadsFromPeers;
  text('s-downloads', dl > 0 ? `${bytes(s.bytes.downloadsFromRelay)} / ${bytes(s.bytes.downloadsFromPeers)} (${(100 * s.bytes.downloadsFromPeers / dl).toFixed(0)} % by peers)` : '–');
  if (s.swarm) {
    // the swarm scheduler's view (server/scheduler/swarm.ts): who trains, who waits, rounds, staleness
    text('s-training', `${count(s.swarm.training)} / ${count(s.swarm.waiting)}`);
    text('s-round', s.swarm.roundSize ? `K ${count(s.swarm.roundSize)}, every ${s.swarm.roundSeconds.toFixed(1)} s` : '–');
    const total = s.swarm.staleness.reduce((a, b) => a + b.count, 0);
    text('s-staleness', total ? s.swarm.staleness.map((b) => `${b.le === '+Inf' ? '>32' : `≤${b.le}`}: ${(100 * b.count / total).toFixed(0)} %`).join(' · ') : '–');
  }
  text('s-ratio', s.bytes.compressionRatio > 0 ? `${s.bytes.compressionRatio.toFixed(1)}× smaller than fp32` : '–');
  throughput.set([history.map((h) => h.at / 1000), history.map((h) => h.samplesPerSec), history.map((h) => h.tokensPerSec)]);

  renderJobs(s.jobs);
  $('leaderboard').innerHTML = s.leaderboard.map((l, i) => `<tr><td>${i + 1}</td><td title="${esc(l.volunteerId)}">${esc(l.volunteerId.slice(0, 14))}</td><td class="num">${count(l.credit)}</td><td class="num">${l.updates}</td></tr>`).join('') || '<tr><td colspan="4" class="muted">no accepted updates yet</td></tr>';
  $('devices').innerHTML = s.volunteers.devices.map((d) => `<tr><td>${esc(d.device)}</td><td class="num">${d.volunteers}</td></tr>`).join('') || '<tr><td colspan="2" class="muted">no active volunteers</td></tr>';
  $('refusals').innerHTML = s.updates.refused.map((r) => `<tr><td>${esc(r.reason)}</td><td class="num">${r.count}</td></tr>`).join('') || '<tr><td colspan="2" class="muted">none</td></tr>';
  text('h-lag', `${s.health.eventLoopLagMs.toFixed(1)} ms`);
  text('h-mem', `${bytes(s.health.rssBytes)} / ${bytes(s.health.heapUsedBytes)}`);
  const d = s.health.disk;
  text('h-disk', `${bytes(d.dataDir)} (checkpoints ${bytes(d.checkpoints)}, payloads ${bytes(d.payloads)}, database ${bytes(d.database)})${d.sharedDatabase !== undefined ? `; shared database ${bytes(d.sharedDatabase)}` : ''}`);
  text('h-queue', `${s.health.queueDepth} (${s.health.pendingUpdates} updates waiting for a round)`);
  text('h-audit', String(s.health.auditEntries));
  text('h-uptime', `${Math.round(s.health.uptimeSec)} s`);
  document.body.dataset.snapshots = String(Number(document.body.dataset.snapshots ?? 0) + 1);
}

/** Jobs still training (or waiting to) in one list, done ones apart below it, each card moving when its job ends. */
function renderJobs(jobs: Snapshot['jobs']): void {
  const live = jobs.filter((j) => j.status !== 'done'), done = jobs.filter((j) => j.status === 'done');
  $('jobs').querySelector('p.muted')?.toggleAttribute('hidden', live.length > 0);
  $('jobs-done').querySelector('p.muted')?.toggleAttribute('hidden', done.length > 0);
  for (const j of jobs) {
    let view = jobViews.get(j.jobId);
    if (!view) {
      const el = document.createElement('div');
      el.className = 'job';
      el.id = `job-${j.jobId}`;
      el.innerHTML = `<h3><a href="/job.html?id=${encodeURIComponent(j.jobId)}"></a><span class="pill"></span><span class="meta muted"></span></h3><p class="latest"></p><div class="charts"></div>`;
      el.querySelector('a')!.textContent = j.name;
      $('jobs').append(el);
      view = { el, draw: evalCharts(el.querySelector('.charts')!, j.name) };
      jobViews.set(j.jobId, view);
    }
    const pill = view.el.querySelector<HTMLElement>('.pill')!;
    pill.textContent = j.status;
    pill.dataset.status = j.status;
    view.el.querySelector('.meta')!.textContent = `${j.model} · version ${j.version} · by ${j.researcher}`;
    const box = $(j.status === 'done' ? 'jobs-done' : 'jobs');
    if (view.el.parentElement !== box) box.append(view.el);
    const last = j.evals[j.evals.length - 1];
    const f = j.finish;
    view.el.querySelector('.latest')!.textContent = (last
      ? `${j.evalCount} evaluations; version ${last.version}: held-out loss ${sigDigits(last.loss)}, accuracy ${(100 * last.accuracy).toFixed(1)} %`
      : 'not evaluated yet')
      + (f ? `. Released version ${f.releasedVersion}${f.loss === null ? '' : ` (loss ${sigDigits(f.loss)}, accuracy ${(100 * (f.accuracy ?? 0)).toFixed(1)} %)`}; stopped: ${f.reason}` : '');
    view.draw(j.evals);
  }
}

function connect(): void {
  const source = new EventSource('/api/ops/stream');
  source.addEventListener('open', () => { text('conn', 'live'); $('conn').dataset.state = 'live'; });
  source.addEventListener('snapshot', (e) => render(JSON.parse((e as MessageEvent<string>).data) as Snapshot));
  // EventSource reconnects by itself; say so meanwhile.
  source.addEventListener('error', () => { text('conn', 'reconnecting…'); $('conn').dataset.state = 'lost'; });
}

connect();
