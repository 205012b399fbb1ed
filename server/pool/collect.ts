// A pool worker frees its dead model-sized arrays when a task ends, not whenever its isolate next
// collects: an idle worker's isolate may not collect for minutes, and at 124M parameters a finished
// round leaves about 2.5 GB of dead arrays (the kept updates, the checkpoint it wrote), an evaluation
// 0.5 GB and more, all resident meanwhile (measured: a 124M relay idle at 3.2 GB before a round, 0.7 GB
// once collected). Each isolate collects only its own heap, so each worker calls this itself.
// `--expose-gc` cannot be given to a worker thread (V8 options in a Worker's execArgv are refused), so
// the flag is set at run time and the `gc` of a fresh context used (it is exposed to contexts made after).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | null | undefined;

/** A full collection of this thread's heap (a few ms with a small JS heap: array bytes cost nothing to mark). */
export function collectGarbage(): void {
  if (gc === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as () => void;
    } catch {
      gc = null; // not available here: the isolate collects on its own schedule, as before
    }
  }
  gc?.();
}
