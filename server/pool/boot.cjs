// A pool worker's entry: registers tsx (as bin/tabtrain.js does for the relay) so the worker runs our
// TypeScript the same way under `npx tabtrain`, `tsx` and the tests, then hands over to worker.ts.
// CommonJS on purpose: piscina first require()s its file, and Node 20's require() of an ES module with
// top-level await can abort the whole process (a fatal "IsGraphAsync … instantiated module" error seen
// in CI) instead of throwing; a CommonJS entry that imports lazily never takes that path.
'use strict';

// Pool threads give way to the relay's event loop: with the loop and a round's math on two busy cores,
// /healthz and every request waited for the scheduler's next slice. On Linux a thread id names one thread
// to setpriority, so this lowers this thread only (+10: the loop then gets about nine tenths of a contested
// core). Elsewhere, or where it is refused, the thread keeps its priority.
try {
  const os = require('node:os');
  const tid = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop());
  if (tid > 0) os.setPriority(tid, Math.min(19, os.getPriority(tid) + 10));
} catch {}

let loaded;
function handler() {
  loaded ??= import('tsx/esm/api').then(({ register }) => {
    register();
    return import('./worker.ts');
  }).then((m) => m.default);
  return loaded;
}

module.exports = async function run(task) {
  return (await handler())(task);
};
// piscina preloads the handler when a worker starts; start loading the TypeScript then too.
handler().catch(() => {}); // a failure here is reported by the first task that runs
