// Browser side of the engine tests: exposes async checks on window; Node calls them with
// page.evaluate and asserts on the plain data they return.
import { gpuCheck } from './checks.ts';
import type { MatmulCase } from './cases.ts';

declare global {
  interface Window { tabtrain: { ready: true; run(name: string, arg?: unknown): Promise<unknown> } }
}

const engine = () => import('./engine-checks.ts');

const checks: Record<string, (arg: unknown) => Promise<unknown>> = {
  ...gpuCheck,
  // The engine is imported on first use, so the harness itself loads even while the engine is broken.
  train: async (name) => (await engine()).trainCase(name as string),
  trainWithGrad: async (name) => (await engine()).trainCase(name as string, true),
  trainInWorker: async (name) => (await engine()).trainCaseInWorker(name as string),
  matmul: async (c) => (await engine()).matmulCase(c as MatmulCase),
  bigDelta: async (n) => (await engine()).bigDeltaCase(n as number),
  memory: async (name) => (await engine()).memoryCase(name as string),
};

window.tabtrain = {
  ready: true,
  async run(name, arg) {
    const check = checks[name];
    if (!check) throw new Error(`no browser check named ${name}; have ${Object.keys(checks).join(', ')}`);
    return check(arg);
  },
};
