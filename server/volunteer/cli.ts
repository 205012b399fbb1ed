// `tabtrain volunteer --server URL`: donate a machine's GPU (through Dawn) without a browser.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { isFatal } from '../../shared/volunteer/supervise.ts';
import { runNodeVolunteer } from './run.ts';

function url(v: string): string {
  try {
    const u = new URL(v);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
    return u.origin + u.pathname.replace(/\/$/, '');
  } catch {
    throw new InvalidArgumentError(`--server must be the relay's http(s) URL, like http://relay.example:8080; got "${v}"`);
  }
}

function fraction(v: string): number {
  const n = Number(v);
  if (!(n > 0 && n <= 1)) throw new InvalidArgumentError(`--intensity must be a number in (0, 1], got "${v}"`);
  return n;
}

export function registerVolunteerCommand(program: Command): void {
  program.command('volunteer')
    .description('train for a relay on this machine: WebGPU through Dawn, or the CPU with --cpu')
    .requiredOption('--server <url>', 'the relay, e.g. http://localhost:8080', url)
    .option('--job <id>', 'train this job (default: the first running job)')
    .option('--state-dir <dir>', 'where the residual, task in progress and cached parameters live', join(homedir(), '.tabtrain', 'volunteer'))
    .option('--cpu', 'train on the CPU reference instead of WebGPU')
    .option('--intensity <p>', 'duty cycle in (0, 1]: the fraction of time spent computing', fraction, 1)
    .action(async (o: { server: string; job?: string; stateDir: string; cpu?: boolean; intensity: number }) => {
      const stop = new AbortController();
      process.once('SIGINT', () => stop.abort());
      process.once('SIGTERM', () => stop.abort());
      try {
        await runNodeVolunteer({ server: o.server, jobId: o.job, stateDir: o.stateDir, cpu: o.cpu, intensity: o.intensity, signal: stop.signal });
      } catch (e) {
        // a relay that does not serve this version's protocol: the person must update (the message says how)
        if (!isFatal(e)) throw e;
        process.stderr.write(`[tabtrain] stopped: ${e.code === 'TT_ERR_CLIENT_TOO_OLD' ? 'this tabtrain is older than the relay: update it to the relay\'s release. ' : ''}The relay said: ${e.message}\n`);
        process.exit(2);
      }
      process.exit(0);
    });
}
