// A relay as its own operating-system process: the real command line (bin/tabtrain.js start) on
// 127.0.0.1, on a shared Postgres database, that a test can kill -9. Several of them are several relays
// of one network, as an operator runs them (docs/postgres.md).
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { tempDataDir } from './relay.ts';

export type RelayProcess = {
  url: string; child: ChildProcess;
  /** resolves with the signal that ended the process (null when it exited by itself) */
  exited: Promise<NodeJS.Signals | null>;
  /** kill -9: the process ends at once, mid-request, mid-transaction */
  kill(): Promise<void>;
  /** SIGTERM (a clean stop) unless already gone, then its data directory is removed */
  stop(): Promise<void>;
};

/** Starts `tabtrain start --database-url …` on a free port and waits for its "listening on" line. */
export async function startRelayProcess(databaseUrl: string, args: string[] = []): Promise<RelayProcess> {
  const dataDir = tempDataDir();
  const child = spawn(process.execPath, ['bin/tabtrain.js', 'start', '--database-url', databaseUrl, '--port', '0', '--host', '127.0.0.1',
    '--data-dir', dataDir, '--sweep-ms', '100', '--quiet', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (b: Buffer) => { log = (log + b.toString()).slice(-4000); });
  const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, signal) => r(signal)));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => { out += b; const m = /listening on (\S+)/.exec(out); if (m) resolve(m[1]); });
    child.once('exit', (code) => reject(new Error(`the relay exited with ${code} before listening:\n${out}\n${log}`)));
  });
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  return {
    url, child, exited,
    async kill() {
      if (!gone()) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (!gone()) child.kill('SIGTERM');
      await exited;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
