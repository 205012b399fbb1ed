// The job form over the job.json box: fields for the model's shape, tokenizer and main hyperparameters
// write into the JSON (which stays the source of truth, for the CLI and the API), the JSON fills the
// fields back, and the estimate (shared/jobs/estimate.ts, the function the relay answers
// POST /api/ops/jobs/estimate with) is shown live: parameters, GPU memory, bytes per task each way,
// and the first refusal the relay would give. A dropped dataset is previewed and gives the dims the data
// decides (a char vocabulary, an MLP's inputs and classes).
import { parseLabelled } from '../../shared/jobs/dataset.ts';
import { estimateJob, type DataDims, type JobEstimate } from '../../shared/jobs/estimate.ts';
import { charVocabulary, decodeUtf8 } from '../../shared/jobs/text.ts';
import { bytes as fmtBytes } from '../../shared/util/format.ts';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
type Json = Record<string, any>;

const num = (id: string) => { const v = $<HTMLInputElement>(id).valueAsNumber; return Number.isFinite(v) ? v : undefined; };
const setNum = (id: string, v: unknown) => { $<HTMLInputElement>(id).value = typeof v === 'number' ? String(v) : ''; };

export type JobForm = { estimate(): JobEstimate; refresh(): void };

export function attachJobForm(spec: HTMLTextAreaElement, data: HTMLInputElement): JobForm {
  let dims: DataDims = {};
  let dataProblem: string | undefined;
  let last: JobEstimate = {};

  const parse = (): Json | undefined => { try { const o = JSON.parse(spec.value); return o && typeof o === 'object' ? o : undefined; } catch { return undefined; } };

  /** JSON → fields. */
  const fill = (o: Json) => {
    const m = o.model ?? {}, h = o.hyperparameters ?? {};
    $<HTMLSelectElement>('f-kind').value = m.kind === 'mlp' ? 'mlp' : 'gpt';
    $<HTMLSelectElement>('f-tokenizer').value = o.dataset?.tokenizer ?? 'char';
    for (const k of ['context', 'layers', 'heads', 'width']) setNum(`f-${k}`, m[k]);
    $<HTMLInputElement>('f-hidden').value = Array.isArray(m.hidden) ? m.hidden.join(', ') : '';
    setNum('f-steps', h.steps); setNum('f-batch', h.batchSize); setNum('f-lr', h.adamw?.lr); setNum('f-k', h.updatesPerRound);
    $<HTMLSelectElement>('f-compression').value = h.compression?.kind ?? 'int8';
    showKind();
  };

  /** Fields → JSON: only what the fields hold is changed; everything else in the JSON is kept. */
  const write = () => {
    const o = parse() ?? { name: 'my job' };
    const kind = $<HTMLSelectElement>('f-kind').value;
    if (kind === 'gpt') {
      o.model = { kind, context: num('f-context') ?? 32, layers: num('f-layers') ?? 2, heads: num('f-heads') ?? 2, width: num('f-width') ?? 64 };
      o.dataset = { ...(o.dataset?.format === 'text' ? o.dataset : { format: 'text' }), tokenizer: $<HTMLSelectElement>('f-tokenizer').value };
    } else {
      const hidden = $<HTMLInputElement>('f-hidden').value.split(',').map((s) => Number(s.trim())).filter((n) => Number.isFinite(n) && n > 0);
      o.model = { kind, hidden };
      o.dataset = o.dataset?.format === 'labelled' ? o.dataset : { format: 'labelled' };
    }
    const h: Json = o.hyperparameters ?? {};
    const set = (k: string, v: unknown) => { if (v === undefined) delete h[k]; else h[k] = v; };
    set('steps', num('f-steps')); set('batchSize', num('f-batch')); set('updatesPerRound', num('f-k'));
    const lr = num('f-lr');
    if (lr !== undefined) h.adamw = { ...(h.adamw ?? {}), lr };
    const c = $<HTMLSelectElement>('f-compression').value;
    if (c !== (h.compression?.kind ?? 'int8')) h.compression = c === 'int8' ? { kind: 'int8', block: 256 } : c === 'fp32' ? { kind: 'fp32' } : { kind: 'topk', fraction: 0.01, bits: 8 };
    o.hyperparameters = h;
    spec.value = JSON.stringify(o, null, 2);
    showKind();
  };

  const showKind = () => {
    const kind = $<HTMLSelectElement>('f-kind').value;
    for (const l of document.querySelectorAll<HTMLElement>('#job-fields [data-for]')) l.hidden = l.dataset.for !== kind;
  };

  const cell = (id: string, v: number | undefined, text: (v: number) => string) => {
    const el = $(id);
    el.textContent = v === undefined ? '–' : text(v);
    if (v === undefined) delete el.dataset.value; else el.dataset.value = String(v);
  };

  const refresh = () => {
    const o = parse();
    last = o ? estimateJob(o, dims) : { problem: { field: 'spec', message: 'spec: is not valid JSON' } };
    cell('est-params', last.paramCount, (v) => v.toLocaleString('en-US'));
    cell('est-gpu', last.gpuBytes, (v) => `${fmtBytes(v)} (largest buffer ${last.largestBuffer!.name}, ${fmtBytes(last.largestBuffer!.bytes)})`);
    cell('est-down', last.downBytes, (v) => `${fmtBytes(v)} (a whole fp32 version; less from published deltas)`);
    cell('est-up', last.upBytes, (v) => fmtBytes(v));
    const note = $('estimate-note');
    note.textContent = last.problem ? `The relay would refuse this: ${last.problem.message}` : dataProblem ?? last.missing ?? '';
    note.className = last.problem || dataProblem ? 'error' : 'muted';
    note.dataset.field = last.problem?.field ?? '';
  };

  const readData = async () => {
    const file = data.files?.[0];
    const preview = $<HTMLPreElement>('preview');
    dims = {};
    dataProblem = undefined;
    if (!file) { preview.hidden = true; refresh(); return; }
    const raw = new Uint8Array(await file.arrayBuffer());
    try {
      const text = decodeUtf8(raw);
      preview.hidden = false;
      preview.textContent = text.slice(0, 600) + (text.length > 600 ? ' …' : '');
      if (parse()?.dataset?.format === 'labelled') {
        const l = parseLabelled(raw);
        let classes = 0;
        for (const y of l.y) classes = Math.max(classes, y + 1);
        dims = { inputs: l.inputs, classes };
      } else {
        dims = { vocab: Array.from(charVocabulary(text)).length };
      }
    } catch (e) {
      dataProblem = (e as Error).message;
    }
    refresh();
  };

  for (const id of ['f-kind', 'f-tokenizer', 'f-context', 'f-layers', 'f-heads', 'f-width', 'f-hidden', 'f-steps', 'f-batch', 'f-lr', 'f-k', 'f-compression']) {
    $(id).addEventListener('input', () => { write(); refresh(); });
  }
  spec.addEventListener('input', () => { const o = parse(); if (o) fill(o); refresh(); });
  data.addEventListener('change', () => { void readData(); });
  // a file dropped anywhere on the form goes to the file input
  const form = spec.form!;
  form.addEventListener('dragover', (e) => e.preventDefault());
  form.addEventListener('drop', (e) => {
    if (!e.dataTransfer?.files.length) return;
    e.preventDefault();
    data.files = e.dataTransfer.files;
    void readData();
  });

  return {
    estimate: () => last,
    /** after the JSON was replaced from outside (an example) */
    refresh: () => { const o = parse(); if (o) fill(o); void readData(); },
  };
}
