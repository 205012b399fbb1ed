// ONNX exports of checkpoints, made once per version on the worker pool and kept as files: a 19M-parameter
// export is seconds of CPU and 80 MB, so it must never run per request or on the event loop. Keyed by
// the version's params hash and the model config (same key, same bytes); concurrent requests for one
// key share one export. The folder is bounded: past maxBytes the least recently served files go.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, statSync, unlinkSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { Counter, type Registry } from 'prom-client';
import type { ModelConfig } from '../../shared/models/config.ts';
import type { ParamsSource, WorkPool } from '../pool/index.ts';

export type OnnxCache = {
  /** The file holding this version's export, made now if it is not there yet. */
  file(model: ModelConfig, hash: string, params: ParamsSource): Promise<string>;
  /** Whether the version's export is on disk already (no params needed to serve it). */
  cached(model: ModelConfig, hash: string): string | undefined;
};

export function createOnnxCache(dir: string, pool: WorkPool, registry: Registry, maxBytes = 2 * 1024 ** 3): OnnxCache {
  mkdirSync(dir, { recursive: true });
  const exports = new Counter({ name: 'tabtrain_onnx_exports_total', help: 'ONNX exports made (one per version and model; later downloads are served from the file)', registers: [registry] });
  const hits = new Counter({ name: 'tabtrain_onnx_cache_hits_total', help: 'ONNX downloads served from an export already on disk', registers: [registry] });
  const inFlight = new Map<string, Promise<string>>();
  const pathOf = (model: ModelConfig, hash: string) =>
    join(dir, `${createHash('sha256').update(`${hash}\n${JSON.stringify(model)}`).digest('hex').slice(0, 40)}.onnx`);

  const touch = (f: string) => { const t = new Date(); try { utimesSync(f, t, t); } catch { /* pruned meanwhile */ } };

  function prune(): void {
    const files = readdirSync(dir).filter((f) => f.endsWith('.onnx')).map((f) => {
      const p = join(dir, f), s = statSync(p);
      return { p, size: s.size, at: s.mtimeMs };
    }).sort((a, b) => a.at - b.at);
    let total = files.reduce((a, f) => a + f.size, 0);
    for (const f of files) {
      if (total <= maxBytes) break;
      try { unlinkSync(f.p); total -= f.size; } catch { /* already gone */ }
    }
  }

  const cached = (model: ModelConfig, hash: string) => {
    const f = pathOf(model, hash);
    if (!existsSync(f)) return undefined;
    hits.inc();
    touch(f);
    return f;
  };

  return {
    cached,
    file(model, hash, params) {
      const f = pathOf(model, hash);
      const running = inFlight.get(f);
      if (running) { hits.inc(); return running; }
      const hit = cached(model, hash);
      if (hit) return Promise.resolve(hit);
      exports.inc();
      const p = pool.run({ kind: 'onnx', model, params, file: f }).then(() => { prune(); return f; }).finally(() => inFlight.delete(f));
      inFlight.set(f, p);
      return p;
    },
  };
}
