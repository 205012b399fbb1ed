// The volunteer page: says what the tab does and for whom, asks consent once (remembered), then runs the
// loop in a Web Worker and shows its state. Pauses on request, while hidden (option) and on battery.
// window.tabtrain mirrors what is shown, for the e2e tests and for anyone curious in the console.
import './style.css';
import type { JobInfo, JobSummary } from '../../shared/protocol/messages.ts';
import { bytes, count, rate, sig } from '../../shared/util/format.ts';
import type { DeviceInfo, Phase, Stats } from '../../shared/volunteer/status.ts';
import type { PageSends, WorkerSends } from './messages.ts';
import { defaultLimits, PeerShare } from './peers.ts';

const CONSENT_KEY = 'tabtrain.consent.v1';
const SETTINGS_KEY = 'tabtrain.settings.v1';
/** Per tab (sessionStorage survives a reload): the storage slot whose residual and task this tab resumes. */
const SLOT_KEY = 'tabtrain.slot';
const JOB_RETRY_MS = 5000;

/** share: take from and serve to other volunteers' tabs (WebRTC); shareKBps: the most this tab sends them */
type Settings = { intensity: number; pauseHidden: boolean; pauseBattery: boolean; paused: boolean; share: boolean; shareKBps: number };
/** relay: the relay the worker talks to now (it changes when one stops answering and the next is used) */
type PageState = { phase: Phase; detail?: string; device?: DeviceInfo; stats?: Stats; job?: JobInfo; consent: boolean; relay: string; failovers: string[]; peers?: PeerShare['stats'] };

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
/** The relays to train for, in order: the one that served this page, then the others of its network named
 * in ?relays=URL,URL (the relay must list them as peers for the browser to reach them). */
const relays = [location.origin, ...(params.get('relays') ?? '').split(',').map((s) => s.trim()).filter(Boolean).flatMap((u) => {
  try { return [new URL(u).origin]; } catch { return []; }
})].filter((u, i, all) => all.indexOf(u) === i);
const state: PageState = { phase: 'starting', consent: false, relay: location.origin, failovers: [] };
(globalThis as unknown as { tabtrain: PageState }).tabtrain = state;

function loadSettings(): Settings {
  const fallback: Settings = { intensity: 1, pauseHidden: false, pauseBattery: true, paused: false, share: true, shareKBps: defaultLimits.bytesPerSec / 1024 };
  try {
    return { ...fallback, ...(JSON.parse(localStorage.getItem(SETTINGS_KEY) ?? '{}') as Partial<Settings>) };
  } catch {
    return fallback;
  }
}
const settings = loadSettings();
const saveSettings = () => localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings));

// ------------------------------------------------------------------ job description

async function describeJob(which?: string): Promise<void> {
  const want = which ?? params.get('job');
  try {
    const { jobs } = (await (await fetch('/api/jobs')).json()) as { jobs: JobSummary[] };
    const summary = jobs.find((j) => j.jobId === want) ?? jobs.find((j) => j.status === 'running') ?? jobs[0];
    if (!summary) {
      showNoJob();
      // once the worker runs, it says when a job starts (a task of a new job re-describes it)
      if (!worker) setTimeout(() => void describeJob(), JOB_RETRY_MS);
      return;
    }
    const job = (await (await fetch(`/api/jobs/${encodeURIComponent(summary.jobId)}`)).json()) as JobInfo;
    state.job = job;
    $('job-name').textContent = job.name;
    $('job-researcher').textContent = job.researcher;
    $('job-data').textContent = `${job.dataset.name} (${job.dataset.shards} shards)`;
    const m = job.model;
    // the kinds' table (with its schemas) loads after the page: it only words this line
    const { kindOf } = await import('../../shared/models/registry.ts');
    $('job-model').textContent = `${kindOf(m).describe(m)}, ${count(job.paramCount)} parameters`;
    $('job-description').textContent = job.description;
  } catch {
    $('job-name').textContent = 'The relay cannot be reached right now';
    $('job-description').textContent = 'This tab will keep trying in the background.';
    setTimeout(() => void describeJob(), JOB_RETRY_MS);
  }
}

function showNoJob(): void {
  state.job = undefined;
  $('job-name').textContent = 'No job is running right now';
  $('job-description').textContent = 'This tab waits, using nothing meanwhile, and starts when a researcher’s job runs.';
}

// ------------------------------------------------------------------ live view

function setPhase(phase: Phase, detail?: string): void {
  const shown = isPaused() && phase !== 'error' ? 'paused' : phase;
  state.phase = shown;
  state.detail = detail;
  const el = $('phase');
  el.textContent = shown;
  el.dataset.phase = shown;
  $('phase-detail').textContent = shown === 'paused' ? pauseReason() : detail ?? '';
  // the loop says when its job is done and no other runs: the job box says so too
  if (shown === 'waiting' && detail?.startsWith('no running job') && state.job) showNoJob();
  document.title = `Tabtrain — ${shown}`;
}

function showDevice(d: DeviceInfo): void {
  state.device = d;
  $('s-device').textContent = d.backend === 'webgpu' ? `WebGPU · ${d.description}` : d.forced ? 'CPU (asked for)' : 'CPU fallback (slower)';
  const note = $('gpu-note');
  if (d.backend === 'cpu') {
    note.hidden = false;
    note.textContent = d.forced
      ? `Training on the processor: ${d.fallbackReason}. Remove ?cpu=1 from the address to use the GPU.`
      : `No WebGPU here: ${d.fallbackReason ?? 'unavailable'}. This tab still helps, training on the processor instead — more slowly.`;
  } else {
    note.hidden = true;
  }
}

function showStats(s: Stats): void {
  state.stats = s;
  // a task of another job (the last one is done): describe the job this tab now trains
  if (s.jobId && s.jobId !== state.job?.jobId && s.jobId !== describing) { describing = s.jobId; void describeJob(s.jobId).finally(() => { describing = undefined; }); }
  $('s-job').textContent = s.jobId ? `${state.job?.name ?? s.jobId} · v${s.baseVersion ?? '–'}` : '–';
  // the relay sizes each task to this device's measured pace (swarm jobs): show what it gave
  $('s-task').textContent = s.taskSteps ? `${s.taskSteps} inner steps` : '–';
  $('s-steps').textContent = rate(s.stepsPerSec);
  $('s-samples-rate').textContent = rate(s.samplesPerSec);
  $('s-samples').textContent = count(s.samples);
  $('s-credit').textContent = count(s.credit);
  $('s-bytes').textContent = bytes(s.bytesSent);
  $('s-ratio').textContent = s.denseBytes > 0 && s.bytesSent > 0 ? `${(s.denseBytes / s.bytesSent).toFixed(1)}× smaller than fp32` : '–';
  $('s-updates').textContent = `${s.updatesAccepted} of ${s.updatesSent}`;
  state.peers = share ? { ...share.stats } : undefined;
  $('s-peers').textContent = share
    ? `${bytes(share.stats.received)} from peers · ${bytes(s.bytesReceived)} from the relay · ${bytes(share.stats.sent)} to peers`
    : `off · ${bytes(s.bytesReceived)} from the relay`;
  const losses = s.recentLosses;
  if (losses.length) {
    $('s-loss').textContent = sig(losses[losses.length - 1]);
    // a loss spanning more than a decade is drawn on a log scale, so its tail still moves
    const log = Math.min(...losses) > 0 && Math.max(...losses) / Math.min(...losses) > 10;
    const ys = log ? losses.map(Math.log10) : losses;
    const max = Math.max(...ys), min = Math.min(...ys), span = max - min || 1;
    const pts = ys.map((l, i) => `${(i / Math.max(1, ys.length - 1)) * 100},${22 - ((l - min) / span) * 20}`).join(' ');
    document.querySelector('#s-loss-chart polyline')!.setAttribute('points', pts);
    $('s-loss-chart').dataset.scale = log ? 'log' : 'linear';
    $('s-loss').title = log ? 'the chart beside is on a log scale' : '';
  }
}

function showFailover(from: string, to: string, reason: string): void {
  const line = `relay ${new URL(from).host} stopped answering (${reason}); going on with ${new URL(to).host}`;
  state.relay = to;
  state.failovers.push(line);
  console.info('[tabtrain]', line);
  $('relay-host').textContent = new URL(to).host;
  $('s-relay').textContent = new URL(to).host;
  const note = $('relay-note');
  note.hidden = false;
  note.textContent = `Relay ${new URL(from).host} stopped answering; this tab goes on with ${new URL(to).host}.`;
}

function showError(message: string): void {
  const el = $('error');
  el.hidden = false;
  el.textContent = message;
  setPhase('error', message);
}

// ------------------------------------------------------------------ worker and controls

let worker: Worker | undefined;
/** This tab's WebRTC sharing, while it is on and the relay offers it. */
let share: PeerShare | undefined;
/** The job being described after the worker moved to it, so one move describes it once. */
let describing: string | undefined;
let hiddenPause = false, batteryPause = false;
const send = (m: PageSends) => worker?.postMessage(m);

function isPaused(): boolean {
  return settings.paused || hiddenPause || batteryPause;
}

function pauseReason(): string {
  if (hiddenPause) return 'Paused while this tab is hidden.';
  if (batteryPause) return 'Paused: running on battery.';
  return 'Paused by you. Press Resume to continue.';
}

function applyPause(): void {
  const paused = isPaused();
  send(paused ? { type: 'pause', reason: pauseReason() } : { type: 'resume' });
  $('toggle').textContent = settings.paused ? 'Resume' : 'Pause';
  share?.setServing(!paused);
  if (paused) setPhase('paused');
  else if (state.phase === 'paused') setPhase('starting', 'resuming');
}

/** Opens sharing when the person wants it and the browser can (no WebRTC: the relay only). */
async function openShare(): Promise<void> {
  if (!settings.share || share || typeof RTCPeerConnection === 'undefined') return;
  share = await PeerShare.open(location.origin, { ...defaultLimits, bytesPerSec: settings.shareKBps * 1024 }).catch(() => undefined);
  share?.setServing(!isPaused());
}

/** The worker's piece traffic: asks go to peers (none: it fetches from the relay), held pieces are served. */
function onPieceMessage(m: WorkerSends): boolean {
  if (m.type === 'piece-get') {
    const answer = (b?: Uint8Array) => send(b ? { type: 'piece', id: m.id, bytes: b.slice().buffer } : { type: 'piece', id: m.id });
    if (!share) answer();
    else share.get(m.hash, m.bytes).then(answer, () => answer());
  } else if (m.type === 'piece-have') share?.have(m.hash, new Uint8Array(m.bytes));
  else if (m.type === 'piece-bad') share?.bad(m.hash);
  else if (m.type === 'piece-will') share?.will(m.hash);
  else return false;
  return true;
}

async function startWorker(): Promise<void> {
  $('consent').hidden = true;
  $('live').hidden = false;
  setPhase('starting', 'choosing a device');
  await openShare();
  worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
  worker.onmessage = (e: MessageEvent<WorkerSends>) => {
    const m = e.data;
    if (onPieceMessage(m)) return;
    if (m.type === 'device') showDevice(m.device);
    else if (m.type === 'slot') sessionStorage.setItem(SLOT_KEY, String(m.slot));
    else if (m.type === 'phase') {
      if (m.phase === 'error') showError(m.detail ?? 'error');
      else setPhase(m.phase, m.detail);
    }
    else if (m.type === 'stats') showStats(m.stats);
    else if (m.type === 'log') console.info('[tabtrain]', m.message);
    else if (m.type === 'failover') showFailover(m.from, m.relay, m.reason);
  };
  worker.onerror = (e) => showError(`The training worker stopped: ${e.message || 'unknown error'}. Reload the page to try again.`);
  send({
    type: 'start', servers: relays, jobId: params.get('job') ?? undefined, intensity: settings.intensity,
    paused: isPaused(), forceCpu: params.get('cpu') === '1', peers: share !== undefined,
    slot: sessionStorage.getItem(SLOT_KEY) === null ? undefined : Number(sessionStorage.getItem(SLOT_KEY)),
  });
}

function wireControls(): void {
  const slider = $<HTMLInputElement>('intensity');
  slider.value = String(Math.round(settings.intensity * 100));
  $('intensity-value').textContent = `${slider.value} %`;
  slider.addEventListener('input', () => {
    settings.intensity = Number(slider.value) / 100;
    $('intensity-value').textContent = `${slider.value} %`;
    saveSettings();
    send({ type: 'intensity', value: settings.intensity });
  });
  $('toggle').addEventListener('click', () => {
    settings.paused = !settings.paused;
    saveSettings();
    applyPause();
  });
  const hidden = $<HTMLInputElement>('pause-hidden');
  hidden.checked = settings.pauseHidden;
  const onVisibility = () => {
    hiddenPause = settings.pauseHidden && document.visibilityState === 'hidden';
    applyPause();
  };
  hidden.addEventListener('change', () => { settings.pauseHidden = hidden.checked; saveSettings(); onVisibility(); });
  document.addEventListener('visibilitychange', onVisibility);
  hiddenPause = settings.pauseHidden && document.visibilityState === 'hidden';

  // sharing: off closes it at once (relay only from then on); on takes effect now if the worker was
  // started with sharing, else after a reload
  const shareBox = $<HTMLInputElement>('share');
  shareBox.checked = settings.share;
  shareBox.addEventListener('change', () => {
    settings.share = shareBox.checked;
    saveSettings();
    if (!settings.share) { share?.close(); share = undefined; } else if (worker) void openShare();
  });
  const shareRate = $<HTMLInputElement>('share-rate');
  shareRate.value = String(settings.shareKBps);
  shareRate.addEventListener('change', () => {
    const v = Number(shareRate.value);
    if (!Number.isFinite(v) || v < 16) { shareRate.value = String(settings.shareKBps); return; }
    settings.shareKBps = v;
    saveSettings();
    share?.setLimits({ bytesPerSec: v * 1024 });
  });

  const battery = $<HTMLInputElement>('pause-battery');
  battery.checked = settings.pauseBattery;
  type Battery = EventTarget & { charging: boolean };
  const getBattery = (navigator as Navigator & { getBattery?: () => Promise<Battery> }).getBattery;
  if (!getBattery) {
    battery.disabled = true;
    battery.parentElement!.title = 'This browser does not say whether it runs on battery';
  } else {
    void getBattery.call(navigator).then((b) => {
      const onBattery = () => { batteryPause = settings.pauseBattery && !b.charging; applyPause(); };
      b.addEventListener('chargingchange', onBattery);
      battery.addEventListener('change', () => { settings.pauseBattery = battery.checked; saveSettings(); onBattery(); });
      onBattery();
    }).catch(() => { battery.disabled = true; });
  }
}

async function main(): Promise<void> {
  $('relay-host').textContent = location.host;
  $('s-relay').textContent = relays.length > 1 ? `${location.host} (then ${relays.slice(1).map((u) => new URL(u).host).join(', ')})` : location.host;
  wireControls();
  await describeJob();
  state.consent = localStorage.getItem(CONSENT_KEY) === 'yes';
  if (state.consent) return startWorker();
  $('consent').hidden = false;
  $('consent-yes').addEventListener('click', () => {
    localStorage.setItem(CONSENT_KEY, 'yes');
    state.consent = true;
    void startWorker();
  }, { once: true });
}

main().catch((e: unknown) => showError(`The page failed to start: ${(e as Error).message}. Reload to try again.`));
