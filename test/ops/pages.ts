// The ops pages served by a Vite dev server on loopback, with /api and /metrics proxied to a real relay,
// so browser tests run the current sources without a build (the relay itself serves dist/ in production).
import { createServer } from 'vite';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';

export const repoRoot = resolve(import.meta.dirname, '../..');
export const artifactsDir = resolve(repoRoot, 'artifacts');

export async function startOpsPages(relayUrl: string): Promise<{ url: string; close(): Promise<void> }> {
  const server = await createServer({
    configFile: false,
    root: repoRoot,
    logLevel: 'error',
    clearScreen: false,
    server: {
      host: '127.0.0.1', port: 0, hmr: false, watch: null,
      proxy: { '/api': { target: relayUrl }, '/metrics': { target: relayUrl } },
    },
    optimizeDeps: { noDiscovery: true, include: ['uplot', 'onnxruntime-web/wasm', 'idb', 'peerjs'], entries: [] },
    worker: { format: 'es' },
  });
  await server.listen();
  const address = server.httpServer?.address();
  if (!address || typeof address === 'string') throw new Error('Vite page server did not bind a TCP port');
  return { url: `http://127.0.0.1:${address.port}`, close: () => server.close() };
}

export function artifact(name: string): string {
  mkdirSync(artifactsDir, { recursive: true });
  return resolve(artifactsDir, name);
}

/** Strict Prometheus text-format check: every line is a HELP/TYPE comment or `name{labels} value`. */
export function parsePrometheus(text: string): Map<string, { labels: Record<string, string>; value: number }[]> {
  const out = new Map<string, { labels: Record<string, string>; value: number }[]>();
  const typed = new Set<string>();
  text.split('\n').forEach((line, i) => {
    if (line === '') return;
    const help = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (help) {
      if (help[1] === 'TYPE') {
        if (!/^(counter|gauge|histogram|summary|untyped)$/.test(help[3])) throw new Error(`line ${i + 1}: unknown metric type "${help[3]}"`);
        typed.add(help[2]);
      }
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    if (!m) throw new Error(`line ${i + 1} is not Prometheus text: ${line}`);
    const labels: Record<string, string> = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/gy;
      let lm: RegExpExecArray | null, consumed = 0;
      while ((lm = re.exec(m[3]))) { labels[lm[1]] = lm[2]; consumed = re.lastIndex; }
      if (consumed !== m[3].length) throw new Error(`line ${i + 1}: malformed labels {${m[3]}}`);
    }
    const value = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : m[4] === 'NaN' ? NaN : Number(m[4]);
    if (Number.isNaN(value) && m[4] !== 'NaN') throw new Error(`line ${i + 1}: value "${m[4]}" is not a number`);
    const base = m[1].replace(/_(bucket|sum|count|total|created)$/, '');
    if (!typed.has(m[1]) && !typed.has(base)) throw new Error(`line ${i + 1}: sample ${m[1]} has no # TYPE line`);
    const list = out.get(m[1]) ?? [];
    list.push({ labels, value });
    out.set(m[1], list);
  });
  return out;
}
