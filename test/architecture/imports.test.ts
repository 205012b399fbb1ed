// The folders say where code runs, and imports may only flow one way: web/ (the browser app) and
// server/ (the relay, the CLI, the Node volunteer) both build on shared/, never on each other, and
// shared/ builds on neither and uses no Node-only module (it runs in tabs and workers too).
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..', '..');

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.ts$/.test(e.name))
    .map((e) => relative(root, join(e.parentPath, e.name)));
}

/** Every module a file names: static imports and re-exports, dynamic import(), import.meta.glob. */
function specifiers(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  const found: string[] = [];
  for (const re of [/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]/g, /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g, /import\.meta\.glob(?:<[^>]*>)?\(\s*['"]([^'"]+)['"]/g]) {
    for (const m of text.matchAll(re)) found.push(m[1]);
  }
  return found;
}

/** 'web', 'server' or 'shared' for a relative import; the bare name for a package. */
function target(file: string, spec: string): string {
  if (!spec.startsWith('.')) return spec;
  return relative(root, resolve(dirname(join(root, file)), spec)).split('/')[0];
}

function violations(folder: string, forbidden: (t: string) => boolean): string[] {
  return sources(folder).flatMap((f) => specifiers(f).filter((s) => forbidden(target(f, s))).map((s) => `${f} imports ${s}`));
}

describe('the import graph', () => {
  it('finds the imports it checks (the walk sees real files and specifiers)', () => {
    const loop = specifiers('shared/volunteer/runtime.ts');
    expect(loop).toContain('./loop.ts');
    expect(sources('web').length).toBeGreaterThan(10);
    expect(target('server/app.ts', '../shared/x.ts')).toBe('shared');
  });

  it('server/ never imports from web/', () => {
    expect(violations('server', (t) => t === 'web')).toEqual([]);
  });

  it('shared/ never imports from web/ or server/', () => {
    expect(violations('shared', (t) => t === 'web' || t === 'server')).toEqual([]);
  });

  it('web/ never imports from server/', () => {
    expect(violations('web', (t) => t === 'server')).toEqual([]);
  });

  it('shared/ uses no Node-only module', () => {
    expect(violations('shared', (t) => t.startsWith('node:'))).toEqual([]);
  });
});
