// npm run bench:finish — the default MNIST job from start to done, with 3 headless Node volunteers (the
// same loop as a tab; CPU reference by default, BENCH_GPU=1 for WebGPU through Dawn) and a relay
// in-process on a temporary directory, once per setting: without augmentation or weight decay (the old
// default), with weight decay only, and with both (today's default). Each run ends by the job's own
// stopping rule (plateau of the held-out loss) or by the versions budget that keeps this bench bounded
// (BENCH_VERSIONS, default 60). One line per setting:
//   <setting>: done (<rule>) at v<N> after <s> s; best v<B>: held-out accuracy <A> %, loss <L>; last v<N>: accuracy …, loss …
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../server/app.ts';
import { mnistHyperparameters } from '../server/default-job.ts';
import { runNodeVolunteer } from '../server/volunteer/run.ts';
import type { Hyperparameters } from '../shared/protocol/messages.ts';
import { sig } from '../shared/util/format.ts';

const VERSIONS = Number(process.env.BENCH_VERSIONS ?? 60);
const VOLUNTEERS = 3;
const until = { ...mnistHyperparameters.until, versions: VERSIONS };
const settings: [string, Partial<Hyperparameters>][] = [
  ['no augmentation, no weight decay', { augment: undefined, adamw: { ...mnistHyperparameters.adamw, weightDecay: 0 }, until }],
  ['weight decay only', { augment: undefined, until }],
  ['augmentation + weight decay (default)', { until }],
];
const only = process.env.BENCH_SETTING; // run one setting by its index (0, 1, 2)

async function run(name: string, h: Partial<Hyperparameters>): Promise<string> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tabtrain-finish-'));
  const relay = await buildApp({ dataDir, port: 0, host: '127.0.0.1', defaultJob: h, defence: { powDifficulty: 8 }, logger: false });
  const abort = new AbortController();
  const t0 = performance.now();
  try {
    const volunteers = Array.from({ length: VOLUNTEERS }, (_, i) => runNodeVolunteer({
      server: relay.url!, stateDir: join(dataDir, `volunteer-${i}`), cpu: !process.env.BENCH_GPU, quiet: true, signal: abort.signal,
    }));
    const done = await new Promise<boolean>((resolve) => {
      const timer = setInterval(() => {
        const job = relay.app.store.getJob('mnist-mlp')!;
        if (job.status === 'done') { clearInterval(timer); resolve(true); }
      }, 250);
    });
    const seconds = (performance.now() - t0) / 1000;
    abort.abort();
    await Promise.allSettled(volunteers);
    const job = relay.app.store.getJob('mnist-mlp')!;
    const info = (await relay.app.scheduler.jobInfo(job));
    const evals = relay.app.store.listEvals('mnist-mlp');
    const best = evals.find((e) => e.version === info.finish?.releasedVersion)!;
    const last = evals[evals.length - 1];
    return `${name}: done=${done} (${info.finish?.rule}) at v${job.version} after ${seconds.toFixed(0)} s; `
      + `best v${best.version}: held-out accuracy ${(best.accuracy * 100).toFixed(2)} %, loss ${sig(best.loss)}; `
      + `last v${last.version}: accuracy ${(last.accuracy * 100).toFixed(2)} %, loss ${sig(last.loss)}`;
  } finally {
    abort.abort();
    await relay.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

process.stdout.write(`bench:finish: ${VOLUNTEERS} Node volunteers (${process.env.BENCH_GPU ? 'WebGPU' : 'CPU reference'}), default job, until ${JSON.stringify(until)}\n`);
for (const [i, [name, h]] of settings.entries()) {
  if (only !== undefined && Number(only) !== i) continue;
  process.stdout.write(`${await run(name, h)}\n`);
}
