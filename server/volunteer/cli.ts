// `tabtrain volunteer --server URL[,URL…]`: donate a machine's GPU (through Dawn) without a browser.
// Several relays of one network (sharing a database) may be given, in order of preference: when one stops
// answering the volunteer goes on with the next, and says so.
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
    throw new InvalidArgumentError(`--server must be the relay's http(s) URL, like http://relay.example:8080, or several separated by commas; got "${v}"`);
  }
}

/** One or more relay URLs, comma-separated; repeating the option adds more. */
function urls(v: string, before: string[] = []): string[] {
  const got = v.split(',').map((s) => s.trim()).filter(Boolean).map(url);
  if (got.length === 0) throw new InvalidArgumentError('--server needs at least one relay URL, like http://relay.example:8080');
  return [...before, ...got];
}

function fraction(v: string): number {
  const n = Number(v);
  if (!(n > 0 && n <= 1)) throw new InvalidArgumentError(`--intensity must be a number in (0, 1], got "${v}"`);
  return n;
}

export function registerVolunteerCommand(program: Command): void {
  program.command('volunteer')
    .description('train for a relay on this machine: WebGPU through Dawn, or the CPU with --cpu')
    .option('--server <url[,url...]>', 'the relay, e.g. http://localhost:8080; or several relays of one network, comma-separated, used in this order when one stops answering', urls)
    .option('--relay <url[,url...]>', 'the same as --server', urls)
    .option('--job <id>', 'train this job (default: the first running job)')
    .option('--state-dir <dir>', 'where the residual, task in progress and cached parameters live', join(homedir(), '.tabtrain', 'volunteer'))
    .option('--cpu', 'train on the CPU reference instead of WebGPU')
    .option('--intensity <p>', 'duty cycle in (0, 1]: the fraction of time spent computing', fraction, 1)
    .action(async (o: { server?: string[]; relay?: string[]; job?: string; stateDir: string; cpu?: boolean; intensity: number }) => {
      const relays = [...(o.server ?? []), ...(o.relay ?? [])];
      if (relays.length === 0) {
        process.stderr.write('error: no relay given: pass --server URL (or several: --server URL1,URL2)\n');
        process.exit(1);
      }
      const stop = new AbortController();
      process.once('SIGINT', () => stop.abort());
      process.once('SIGTERM', () => stop.abort());
      try {
        await runNodeVolunteer({ server: relays, jobId: o.job, stateDir: o.stateDir, cpu: o.cpu, intensity: o.intensity, signal: stop.signal });
      } catch (e) {
        // a relay that does not serve this version's protocol: the person must update (the message says how)
        if (!isFatal(e)) throw e;
        process.stderr.write(`[tabtrain] stopped: ${e.code === 'TT_ERR_CLIENT_TOO_OLD' ? 'this tabtrain is older than the relay: update it to the relay\'s release. ' : ''}The relay said: ${e.message}\n`);
        process.exit(2);
      }
      process.exit(0);
    });
}
