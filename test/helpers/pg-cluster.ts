// A private, throwaway PostgreSQL server for tests that stop and start the database itself: initdb in a
// temporary directory, its own free port on 127.0.0.1, trust authentication, started and stopped with
// pg_ctl. The server binaries come from the system (Debian: /usr/lib/postgresql/<version>/bin, from the
// postgresql package .ci/run installs); without them the test fails saying so, never skips. Postgres
// refuses to run as root: as root, every command runs as the postgres user (runuser), which owns the
// directory.
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export type PgCluster = {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string; port: number;
  /** pg_ctl stop -m fast: open connections are ended, new ones refused, until start() */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** stops the server (if running) and removes its directory */
  destroy(): Promise<void>;
};

const LIB = '/usr/lib/postgresql';

/** The directory holding initdb and pg_ctl: the newest version under /usr/lib/postgresql, else PATH. */
export function postgresBinDir(): string {
  const has = (d: string) => existsSync(join(d, 'initdb')) && existsSync(join(d, 'pg_ctl'));
  const versions = existsSync(LIB) ? readdirSync(LIB).sort((x, y) => Number.parseFloat(y) - Number.parseFloat(x)) : [];
  const dir = [...versions.map((v) => join(LIB, v, 'bin')), ...(process.env.PATH ?? '').split(delimiter).filter(Boolean)].find(has);
  if (!dir) {
    throw new Error(`this test needs the PostgreSQL server programs initdb and pg_ctl, found neither in ${LIB}/<version>/bin nor on PATH: `
      + 'install them (Debian: apt-get install postgresql, which .ci/run does) and run it again');
  }
  return dir;
}

/** `cwd`: a directory the postgres user may enter (initdb and pg_ctl look up where they run). */
const run = (cmd: string, args: string[], cwd: string) => new Promise<string>((resolve, reject) => {
  execFile(cmd, args, { timeout: 120_000, cwd }, (err, stdout, stderr) => {
    if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
    else resolve(stdout);
  });
});

const freePort = () => new Promise<number>((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
});

/** initdb + pg_ctl start of a fresh cluster; the caller destroys it. */
export async function startPgCluster(): Promise<PgCluster> {
  const bin = postgresBinDir();
  const root = process.getuid?.() === 0;
  let pgUid: number | undefined, pgGid: number | undefined;
  if (root) {
    const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
    if (!line) throw new Error('running as root, this test runs PostgreSQL as the user postgres, which does not exist: install Debian\'s postgresql package (it creates the user)');
    [pgUid, pgGid] = line.split(':').slice(2, 4).map(Number);
  }
  // as root: the same program, as the postgres user (Postgres will not run as root)
  const dir = mkdtempSync(join(tmpdir(), 'tabtrain-pg-'));
  const pgRun = (prog: string, args: string[]) => (root ? run('runuser', ['-u', 'postgres', '--', join(bin, prog), ...args], dir) : run(join(bin, prog), args, dir));
  if (root) chownSync(dir, pgUid!, pgGid!);
  const data = join(dir, 'data'), log = join(dir, 'server.log');
  const port = await freePort();
  let running = false;
  const start = async () => {
    try {
      await pgRun('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '60', '-o', `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${dir} -c fsync=off`, 'start']);
    } catch (e) {
      throw new Error(`${(e as Error).message}\nserver log:\n${existsSync(log) ? readFileSync(log, 'utf8').slice(-2000) : '(none)'}`);
    }
    running = true;
  };
  const stop = async () => {
    await pgRun('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop']);
    running = false;
  };
  try {
    await pgRun('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
    await start();
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`, port, start, stop,
    async destroy() {
      if (running) await pgRun('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
