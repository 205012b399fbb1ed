// Worker side of trainCaseInWorker: runs one training case and posts its result (or error) back.
import { trainCase } from './engine-checks.ts';

self.onmessage = async (e: MessageEvent<{ name: string }>) => {
  try {
    self.postMessage({ ok: true, result: await trainCase(e.data.name) });
  } catch (err) {
    self.postMessage({ ok: false, error: (err as Error).stack ?? String(err) });
  }
};
