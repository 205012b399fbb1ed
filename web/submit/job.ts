// The job page: status, curves (uPlot), volunteers, checkpoint downloads (raw fp32, ONNX, safetensors),
// controls, and "try the model" in onnxruntime-web with the latest checkpoint, or a done job's released one
// (marked, with why the job stopped). Refreshes every few seconds.
import './style.css';
import { evalCharts, type EvalPoint } from '../dashboard/charts.ts';
import { count, sig } from '../../shared/util/format.ts';
import type { Finish, Until } from '../../shared/protocol/messages.ts';
import type { Tokenizer } from '../../shared/jobs/text.ts';
import { kindOf, modelKindNames, type ModelConfig } from '../../shared/models/registry.ts';
import { api } from './api.ts';
import { canvasToDigit, classify, loadModel, sampleText } from './try-model.ts';

type Overview = {
  job: { jobId: string; name: string; researcher: string; description: string; status: string; version: number; paramCount: number;
    model: ModelConfig;
    dataset: { name: string; shards: number; heldOut: number };
    hyperparameters: { steps: number; batchSize: number; updatesPerRound: number; outerLr: number; outerMomentum: number; aggregator: string; compression: { kind: string }; adamw: { lr: number };
      usefulness?: { mode: 'off' | 'score' | 'enforce'; minDrop: number; relativeShare?: number }; until?: Until; augment?: { shift: number } };
    finish?: Finish };
  owner: string; tokenizer: Tokenizer | null; evals: EvalPoint[];
  /** scored, meanDrop, notUseful: only when the job has usefulness on */
  volunteers: { volunteerId: string; device: string | null; tasks: number; accepted: number; samples: number; scored?: number; meanDrop?: number | null; notUseful?: number }[];
  checkpoints: { version: number; hash: string; at: number }[];
};

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const text = (id: string, s: string) => { $(id).textContent = s; };
const jobId = new URLSearchParams(location.search).get('id') ?? '';
const draw = evalCharts($('curves'), 'held-out');
let latest: Overview | undefined;

async function refresh(): Promise<void> {
  try {
    const o = await api<Overview>(`/api/ops/jobs/${encodeURIComponent(jobId)}/overview`);
    latest = o;
    render(o);
    $('job-error').hidden = true;
  } catch (e) {
    $('job-error').hidden = false;
    text('job-error', jobId ? (e as Error).message : 'no job given: open this page as /job.html?id=JOB_ID');
  }
}

function render(o: Overview): void {
  const j = o.job, m = j.model, h = j.hyperparameters;
  document.title = `Tabtrain — ${j.name}`;
  text('job-name', j.name);
  text('job-status', j.status);
  $('job-status').dataset.status = j.status;
  text('job-id', j.jobId);
  text('job-owner', o.owner);
  const kind = kindOf(m);
  text('job-model', `${kind.describe(m, { long: true, tokenizer: o.tokenizer?.kind })}; ${count(j.paramCount)} parameters`);
  text('job-data', `${j.dataset.shards} training shards, ${count(j.dataset.heldOut)} held-out ${kind.dataFormat === 'text' ? 'tokens' : 'rows'}`);
  const useful = h.usefulness && h.usefulness.mode !== 'off' ? h.usefulness : undefined;
  text('job-hyper', `H=${h.steps} inner AdamW steps (lr ${h.adamw.lr}) of batch ${h.batchSize}; K=${h.updatesPerRound} updates per round; outer lr ${h.outerLr}, momentum ${h.outerMomentum}; ${h.aggregator}; ${h.compression.kind} updates`
    + (useful ? `; usefulness ${useful.mode === 'enforce' ? `enforced (loss drop ≥ ${useful.minDrop}${useful.relativeShare ? ` and ≥ ${useful.relativeShare} × the job's median relative drop` : ''})` : 'scored'}` : ''));
  text('job-until', untilText(h.until) + (h.augment ? `; digits shifted up to ${h.augment.shift} px (seeded)` : ''));
  text('job-version', String(j.version));
  const last = o.evals[o.evals.length - 1];
  text('job-latest', last ? `version ${last.version}: loss ${sig(last.loss)}, ${kind.accuracyLabel} ${(100 * last.accuracy).toFixed(1)} %` : 'not evaluated yet');
  const f = j.finish;
  $('job-finish-row').hidden = !f;
  $('job-finish-row').previousElementSibling!.toggleAttribute('hidden', !f);
  text('job-finish', f ? `released version ${f.releasedVersion}${f.loss === null ? '' : ` (held-out loss ${sig(f.loss)}, accuracy ${(100 * (f.accuracy ?? 0)).toFixed(1)} %)`}; stopped: ${f.reason}` : '');
  $('job-finish').dataset.released = f ? String(f.releasedVersion) : '';
  $('job-finish').dataset.rule = f?.rule ?? '';
  $('job-latest').dataset.loss = last ? String(last.loss) : '';
  text('job-description', j.description);
  draw(o.evals);
  $('volunteers-useful').hidden = !useful;
  const drop = (v: Overview['volunteers'][number]) => `<td class="num" data-mean-drop="${v.meanDrop ?? ''}" title="${v.scored ?? 0} scored, ${v.notUseful ?? 0} refused">`
    + `${v.meanDrop == null ? '–' : v.meanDrop.toFixed(3)}${v.notUseful ? ` (${v.notUseful} refused)` : ''}</td>`;
  $('volunteers').innerHTML = o.volunteers.map((v) => `<tr><td>${v.volunteerId.slice(0, 14)}</td><td>${(v.device ?? '').replace(/</g, '&lt;').slice(0, 40) || '–'}</td><td class="num">${v.tasks}</td><td class="num">${v.accepted}</td><td class="num">${count(v.samples)}</td>${useful ? drop(v) : ''}</tr>`).join('')
    || `<tr><td colspan="${useful ? 6 : 5}" class="muted">no volunteer has worked on it yet</td></tr>`;
  const base = `/api/jobs/${encodeURIComponent(j.jobId)}/versions`;
  const ops = `/api/ops/jobs/${encodeURIComponent(j.jobId)}/versions`;
  // the newest 8, and a done job's released version first wherever it is
  const shown = o.checkpoints.slice(-8).reverse();
  const released = f && o.checkpoints.find((c) => c.version === f.releasedVersion);
  const rows = released ? [released, ...shown.filter((c) => c !== released)] : shown;
  $('checkpoints').innerHTML = rows.map((c) => `<tr${c === released ? ' class="released"' : ''}><td class="num">${c.version}${c === released ? ' <b>released</b>' : ''}</td>
    <td><a href="${base}/${c.version}/params" download="${j.jobId}-v${c.version}.f32">raw fp32</a> · <a class="onnx" href="${ops}/${c.version}/model.onnx">ONNX</a> · <a class="safetensors" href="${ops}/${c.version}/model.safetensors">safetensors</a></td>
    <td><code>${c.hash.slice(0, 12)}</code></td></tr>`).join('');
  $('try').hidden = false;
  // each kind with a way to try it has a panel try-<kind> (a kind without one shows none)
  for (const k of modelKindNames) { const panel = document.getElementById(`try-${k}`); if (panel) panel.hidden = m.kind !== k; }
  text('try-version', `(version ${tryVersion(o)}${f ? ', released' : ''})`);
}

/** What ends the job, in words. */
function untilText(u: Until | undefined): string {
  if (!u) return 'runs until an operator ends it';
  const parts = [
    u.versions !== undefined && `version ${u.versions}`,
    u.samples !== undefined && `${count(u.samples)} samples`,
    u.targetLoss !== undefined && `held-out loss ≤ ${u.targetLoss}`,
    u.targetAccuracy !== undefined && `held-out accuracy ≥ ${(100 * u.targetAccuracy).toFixed(1)} %`,
    u.plateau && `no held-out loss improvement over ${u.plateau.tolerance} for ${u.plateau.evals} evaluations`,
  ].filter(Boolean);
  return `ends at the first of: ${parts.join('; ')}`;
}

/** A done job is tried with the version it released; a running one with its latest. */
const tryVersion = (o: Overview): number => o.job.finish?.releasedVersion ?? o.job.version;

/** The ONNX session of the job's current version, reloaded when the version moves. */
let session: { version: number; s: Promise<Awaited<ReturnType<typeof loadModel>>> } | undefined;
function currentSession() {
  const v = tryVersion(latest!);
  if (!session || session.version !== v) session = { version: v, s: loadModel(`/api/ops/jobs/${encodeURIComponent(jobId)}/versions/${v}/model.onnx`) };
  return session.s;
}

// ---- try an MLP: draw a digit ------------------------------------------------------------------
const canvas = $<HTMLCanvasElement>('draw');
const ctx = canvas.getContext('2d', { willReadFrequently: true })!;
const clear = () => { ctx.fillStyle = 'black'; ctx.fillRect(0, 0, canvas.width, canvas.height); };
clear();
let drawing = false;
canvas.addEventListener('pointerdown', (e) => { drawing = true; ctx.beginPath(); ctx.moveTo(e.offsetX, e.offsetY); });
canvas.addEventListener('pointermove', (e) => {
  if (!drawing) return;
  ctx.strokeStyle = 'white'; ctx.lineWidth = 22; ctx.lineCap = 'round'; ctx.lineJoin = 'round';
  ctx.lineTo(e.offsetX, e.offsetY); ctx.stroke();
});
window.addEventListener('pointerup', () => { drawing = false; });
$('clear').addEventListener('click', () => { clear(); text('prediction', '–'); $('probs').innerHTML = ''; });
$('classify').addEventListener('click', async () => {
  const m = latest?.job.model;
  if (!m || m.kind !== 'mlp') return;
  try {
    if (m.inputs !== 784) throw new Error(`drawing needs a 784-input (28×28) model; this one takes ${m.inputs} inputs`);
    const p = await classify(await currentSession(), canvasToDigit(canvas));
    let best = 0;
    p.forEach((v, i) => { if (v > p[best]) best = i; });
    text('prediction', `${best} (${(100 * p[best]).toFixed(0)} %)`);
    $('prediction').dataset.class = String(best);
    $('probs').innerHTML = Array.from(p, (v, i) => `<div style="--p:${v.toFixed(3)}">${i}<br>${(100 * v).toFixed(0)}%</div>`).join('');
  } catch (e) {
    text('prediction', (e as Error).message);
  }
});

// ---- try a GPT: sample text ---------------------------------------------------------------------
$('sample').addEventListener('click', async () => {
  const o = latest;
  if (!o || o.job.model.kind !== 'gpt' || !o.tokenizer) return;
  const out = $('sample-output');
  out.dataset.status = 'running';
  out.textContent = 'sampling…';
  try {
    const prompt = $<HTMLInputElement>('prompt').value;
    const length = Math.max(1, Math.min(500, Number($<HTMLInputElement>('sample-length').value) || 80));
    const temperature = Number($<HTMLInputElement>('temperature').value) || 0;
    const s = await sampleText(await currentSession(), o.tokenizer, o.job.model.context, prompt, length, temperature);
    out.innerHTML = '';
    const b = document.createElement('b');
    b.textContent = prompt;
    out.append(b, document.createTextNode(s));
    out.dataset.status = 'done';
    out.dataset.sample = s;
  } catch (e) {
    out.textContent = (e as Error).message;
    out.dataset.status = 'error';
  }
});

// ---- controls -----------------------------------------------------------------------------------
const bodies: Partial<Record<string, () => string>> = {
  rollback: () => JSON.stringify({ version: Number($<HTMLInputElement>('rollback-version').value) }),
  extend: () => `{"until": ${$<HTMLInputElement>('extend-until').value}}`,
  finish: () => '{}',
};
for (const action of ['approve', 'pause', 'resume', 'rollback', 'finish', 'extend'] as const) {
  $(action).addEventListener('click', async () => {
    try {
      const body = bodies[action]?.();
      const r = await api<{ status: string; version: number }>(`/api/ops/jobs/${encodeURIComponent(jobId)}/${action}`, { method: 'POST', body });
      text('control-result', `${action}: the job is ${r.status} at version ${r.version}`);
      void refresh();
    } catch (e) {
      text('control-result', (e as Error).message);
    }
  });
}

void refresh();
setInterval(() => void refresh(), 3000);
