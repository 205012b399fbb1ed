// Published version deltas (shared/codec/version-delta.ts): a volunteer that holds version v and applies
// the relay's deltas up to v + n holds exactly the relay's v + n, in Node and in Chromium alike, for every
// codec a job can use; and error feedback keeps the published chain on the outer steps' track.
import { createHash } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Compression } from '../../shared/codec/index.ts';
import { applyVersionDelta, deltaCompression, publishVersion, publishVersionInPlace } from '../../shared/codec/version-delta.ts';
import { defaultMlp, initParams, type GptConfig } from '../../shared/models/config.ts';
import { rng } from '../../shared/util/rng.ts';
import { launchBrowser } from '../helpers/browser.ts';
import { startPageServer, type PageServer } from '../helpers/vite.ts';

const hash = (p: Float32Array): string => createHash('sha256').update(new Uint8Array(p.buffer, p.byteOffset, p.byteLength)).digest('hex');

/** A relay's view of n versions: random outer steps, each published as a delta with error feedback. */
function chain(n: number, length: number, c: Compression, seed: number, published?: Compression) {
  const r = rng(seed);
  const v0 = Float32Array.from({ length }, () => r.normal() * 0.1);
  const residual = new Float32Array(length);
  let relay: Float32Array = v0, ideal: Float32Array = v0;
  const deltas: Uint8Array[] = [], hashes: string[] = [hash(v0)];
  for (let v = 1; v <= n; v++) {
    // the outer step moves from the published version, as the relay's round does
    const target = Float32Array.from(relay, (x) => x + r.normal() * 0.01 * (1 + (v % 3)));
    ideal = Float32Array.from(ideal, (x, i) => x + (target[i] - relay[i]));
    const out = publishVersion(relay, target, residual, deltaCompression(c, published));
    deltas.push(out.delta);
    relay = out.params;
    hashes.push(hash(relay));
  }
  return { v0, deltas, hashes, relay, residual, ideal };
}

const codecs: Compression[] = [{ kind: 'int8', block: 256 }, { kind: 'topk', fraction: 0.01, bits: 8 }, { kind: 'fp32' }];

describe('version deltas', () => {
  for (const c of codecs) {
    it(`published in place (the relay's round) give the same delta, bits and residual as published from copies (${c.kind} job)`, () => {
      const r = rng(3);
      const base = Float32Array.from({ length: 5003 }, () => r.normal() * 0.1);
      base[7] = -0; // a negative zero stays what the copying version makes of it
      const target = Float32Array.from(base, (x) => x + r.normal() * 0.01);
      const residual = Float32Array.from(base, () => r.normal() * 1e-4);
      const copied = publishVersion(base, target, Float32Array.from(residual), deltaCompression(c));
      const res2 = Float32Array.from(residual);
      const inPlace = publishVersionInPlace(Float32Array.from(base), Float32Array.from(target), res2, deltaCompression(c));
      expect(hash(inPlace.params)).toBe(hash(copied.params));
      expect(Buffer.from(inPlace.delta).equals(Buffer.from(copied.delta))).toBe(true);
      const res1 = Float32Array.from(residual);
      publishVersion(base, target, res1, deltaCompression(c));
      expect(hash(res2)).toBe(hash(res1));
    });

    if (c.kind === 'int8') {
      it('int8 in place (one pass a block) matches the copies with odd blocks, an all-zero block and a tiny one', () => {
        const r = rng(4);
        for (const block of [1, 7, 64]) {
          const base = Float32Array.from({ length: 1001 }, () => r.normal() * 0.1);
          const target = Float32Array.from(base, (x) => x + r.normal() * 0.01);
          const residual = Float32Array.from(base, () => r.normal() * 1e-4);
          for (let i = 0; i < 2 * block; i++) { target[i] = base[i]; residual[i] = 0; } // blocks with nothing to send
          for (let i = 2 * block; i < 3 * block; i++) { target[i] = base[i]; residual[i] = 1e-45; } // a scale that underflows
          const res1 = Float32Array.from(residual), res2 = Float32Array.from(residual);
          const copied = publishVersion(base, target, res1, { kind: 'int8', block });
          const inPlace = publishVersionInPlace(Float32Array.from(base), Float32Array.from(target), res2, { kind: 'int8', block });
          expect(hash(inPlace.params)).toBe(hash(copied.params));
          expect(Buffer.from(inPlace.delta).equals(Buffer.from(copied.delta))).toBe(true);
          expect(hash(res2)).toBe(hash(res1));
        }
      });
    }

    it(`rebuild the relay's exact bits over 40 versions from any version held (${c.kind} job)`, () => {
      const { v0, deltas, hashes } = chain(40, 3001, c, 7);
      let p: Float32Array = v0;
      deltas.forEach((d, i) => {
        p = applyVersionDelta(p, d);
        expect(hash(p)).toBe(hashes[i + 1]);
      });
      // a volunteer that joined at version 25 (its params downloaded whole) chains from there
      let q: Float32Array = Float32Array.from(v0);
      for (let i = 0; i < 25; i++) q = applyVersionDelta(q, deltas[i]);
      for (let i = 25; i < 40; i++) q = applyVersionDelta(q, deltas[i]);
      expect(hash(q)).toBe(hashes[40]);
    });
  }

  it('publish int8 for top-k jobs and fp32 for uncompressed ones', () => {
    expect(deltaCompression({ kind: 'topk', fraction: 0.01, bits: 4 })).toEqual({ kind: 'int8', block: 256 });
    expect(deltaCompression({ kind: 'int8', block: 64 })).toEqual({ kind: 'int8', block: 64 });
    expect(deltaCompression({ kind: 'fp32' })).toEqual({ kind: 'fp32' });
  });

  it('carry what int8 drops in the relay residual, so the chain stays on the outer steps\' track', () => {
    const { relay, residual, ideal } = chain(60, 4096, { kind: 'int8', block: 256 }, 3);
    let drift = 0, worstResidual = 0;
    for (let i = 0; i < relay.length; i++) {
      drift = Math.max(drift, Math.abs(relay[i] + residual[i] - ideal[i]));
      worstResidual = Math.max(worstResidual, Math.abs(residual[i]));
    }
    // published + residual is the sum of all outer steps (up to fp32 rounding) ...
    expect(drift).toBeLessThan(1e-5);
    // ... and the residual stays under half a quantisation step (a block's largest value / 127 / 2): it
    // does not pile up. Steps here are normal with sigma at most 0.03, so a block's largest is under 0.15
    expect(worstResidual).toBeLessThan(0.15 / 127 / 2);
  });

  it('follow a job\'s own choice of codec: top-k versions rebuild exactly, are about 1 % of fp32, and the residual keeps the rest', () => {
    const topk: Compression = { kind: 'topk', fraction: 0.01, bits: 8 };
    expect(deltaCompression({ kind: 'int8', block: 256 }, topk)).toEqual(topk);
    const { v0, deltas, hashes, relay, residual, ideal } = chain(30, 20_000, { kind: 'topk', fraction: 0.01, bits: 8 }, 5, topk);
    let p: Float32Array = v0;
    deltas.forEach((d, i) => { p = applyVersionDelta(p, d); expect(hash(p)).toBe(hashes[i + 1]); });
    for (const d of deltas) expect(d.length / (4 * 20_000)).toBeLessThan(0.02);
    let drift = 0;
    for (let i = 0; i < relay.length; i++) drift = Math.max(drift, Math.abs(relay[i] + residual[i] - ideal[i]));
    expect(drift).toBeLessThan(1e-4);
  });

  it('are no more than a quarter of the fp32 parameters for int8 jobs', () => {
    const { deltas } = chain(1, 100_000, { kind: 'int8', block: 256 }, 1);
    expect(deltas[0].length / (4 * 100_000)).toBeLessThan(0.26);
  });
});

describe('version deltas in Chromium', () => {
  let server: PageServer, browser: Browser, page: Page;
  beforeAll(async () => {
    server = await startPageServer();
    browser = await launchBrowser({ webgpu: false });
    page = await browser.newPage();
    await page.goto(`${server.url}/test/codec/pages/delta.html`);
    await page.waitForFunction(() => window.rebuildReady === true);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  for (const c of codecs) {
    it(`rebuild the same hash as Node and the relay (${c.kind} job)`, async () => {
      const { v0, deltas, hashes } = chain(12, 2053, c, 11);
      const got = await page.evaluate(([b, ds]) => window.rebuild(b, ds), [Array.from(new Uint8Array(v0.buffer)), deltas.map((d) => Array.from(d))] as const);
      expect(got).toBe(hashes[12]);
    });
  }

  it('make version 0 from the seed with the same hash as Node (the MNIST MLP and a small GPT)', async () => {
    for (const model of [defaultMlp, { kind: 'gpt', vocab: 64, context: 32, layers: 2, heads: 2, width: 48 } satisfies GptConfig]) {
      const p = initParams(model, 1);
      const node = createHash('sha256').update(new Uint8Array(p.buffer)).digest('hex');
      expect(await page.evaluate(([m]) => window.seeded(m, 1), [model] as const)).toBe(node);
    }
  });
});
