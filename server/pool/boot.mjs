// A pool worker's entry: registers tsx (as bin/tabtrain.js does for the relay) so the worker runs our
// TypeScript the same way under `npx tabtrain`, `tsx` and the tests, then hands over to worker.ts.
import { register } from 'tsx/esm/api';

register();
const { default: run } = await import('./worker.ts');
export default run;
