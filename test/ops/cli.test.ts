// The `tabtrain` command line against a real relay: tokens, submit, approve, pause/resume/rollback, and
// `audit verify` catching one tampered entry. The key steps run bin/tabtrain.js as a real child process;
// the rest run the same commands in-process (a child process costs seconds on a loaded 2-core box).
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Command, CommanderError } from 'commander';
import { dbFile, registerOpsCommands } from '../../server/ops/cli.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';

type Result = { code: number; stdout: string; stderr: string };

function tabtrain(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['bin/tabtrain.js', ...args], { env: { ...process.env, TABTRAIN_SERVER: '', TABTRAIN_TOKEN: '', ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout: stdout.trim(), stderr: stderr.trim() });
    });
  });
}

/** The same subcommands in this process: output captured, exit code from process.exitCode or commander. */
async function inProcess(args: string[], env: Record<string, string> = {}): Promise<Result> {
  const saved = { server: process.env.TABTRAIN_SERVER, token: process.env.TABTRAIN_TOKEN, exitCode: process.exitCode };
  const out: string[] = [], err: string[] = [];
  const write = { out: process.stdout.write, err: process.stderr.write };
  process.env.TABTRAIN_SERVER = env.TABTRAIN_SERVER ?? '';
  process.env.TABTRAIN_TOKEN = env.TABTRAIN_TOKEN ?? '';
  process.exitCode = undefined;
  process.stdout.write = ((s: string) => { out.push(String(s)); return true; }) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => { err.push(String(s)); return true; }) as typeof process.stderr.write;
  let code = 0;
  try {
    const program = new Command('tabtrain').exitOverride().configureOutput({ writeErr: (s) => err.push(s), writeOut: (s) => out.push(s) });
    registerOpsCommands(program);
    for (const c of program.commands) { c.exitOverride(); for (const s of c.commands) s.exitOverride(); }
    await program.parseAsync(args, { from: 'user' });
    code = Number(process.exitCode ?? 0);
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    code = e.exitCode;
  } finally {
    process.stdout.write = write.out;
    process.stderr.write = write.err;
    process.exitCode = saved.exitCode;
    process.env.TABTRAIN_SERVER = saved.server;
    process.env.TABTRAIN_TOKEN = saved.token;
  }
  return { code, stdout: out.join('').trim(), stderr: err.join('').trim() };
}

let relay: TestRelay;
let files: string;
beforeAll(async () => {
  relay = await startRelay({ defaultJob: false });
  files = mkdtempSync(join(tmpdir(), 'tt-cli-'));
  writeFileSync(join(files, 'job.json'), JSON.stringify({
    name: 'cli gpt', model: { kind: 'gpt', context: 8, layers: 1, heads: 1, width: 8 }, dataset: { format: 'text', tokenizer: 'byte', shards: 2 },
  }));
  writeFileSync(join(files, 'corpus.txt'), 'ab cd ef gh ij kl mn op qr st uv wx yz '.repeat(30));
});
afterAll(async () => { await relay?.stop(); });

describe('tabtrain CLI', () => {
  test('bootstraps an operator from the data dir, then researchers submit and operators approve over HTTP; tampering is caught', async () => {
    const op = await tabtrain(['token', 'create', '--role', 'operator', '--name', 'olga', '--data-dir', relay.dataDir]);
    expect(op.code, op.stderr).toBe(0);
    expect(op.stdout).toMatch(/^tt_\S+$/);
    const asOp = { TABTRAIN_SERVER: relay.url, TABTRAIN_TOKEN: op.stdout };

    const res = await inProcess(['token', 'create', '--role', 'researcher', '--name', 'rita'], asOp);
    expect(res.code, res.stderr).toBe(0);
    const asRita = { TABTRAIN_SERVER: relay.url, TABTRAIN_TOKEN: res.stdout };

    // --server on the command line works as well as the environment.
    const sub = await tabtrain(['submit', join(files, 'job.json'), '--data', join(files, 'corpus.txt'), '--server', relay.url], { TABTRAIN_TOKEN: res.stdout });
    expect(sub.code, sub.stderr).toBe(0);
    const jobId = sub.stdout;
    expect(sub.stderr).toMatch(/status pending/);

    const denied = await inProcess(['approve', jobId], asRita);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/403 TT_ERR_FORBIDDEN/);
    const approved = await tabtrain(['approve', jobId], asOp);
    expect(approved.stdout).toBe(`${jobId} is running at version 0`);
    expect((await inProcess(['pause', jobId], asRita)).stdout).toBe(`${jobId} is paused at version 0`);
    expect((await inProcess(['resume', jobId], asOp)).stdout).toBe(`${jobId} is running at version 0`);
    expect((await inProcess(['rollback', jobId, '--to', '0'], asOp)).stdout).toBe(`${jobId} rolled back to version 0 (running)`);

    const ok = await inProcess(['audit', 'verify', '--data-dir', relay.dataDir]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^audit log OK: 7 entries/);

    // Tamper with entry 3 (the job submission) directly in the database.
    const db = new Database(dbFile(relay.dataDir));
    const row = db.prepare('SELECT seq, action, detail FROM ops_audit WHERE seq = 3').get() as { seq: number; action: string; detail: string };
    expect(row.action).toBe('job.submit');
    db.prepare('UPDATE ops_audit SET detail = ? WHERE seq = 3').run(row.detail.replace('rita', 'eve').replace('cli gpt', 'evil gpt'));
    db.close();

    const broken = await tabtrain(['audit', 'verify', '--data-dir', relay.dataDir]);
    expect(broken.code).toBe(2);
    expect(broken.stdout).toMatch(/^audit log BROKEN at entry 3: entry 3 \(job\.submit\) was changed/);
    const remote = await inProcess(['audit', 'verify'], asRita);
    expect(remote.code).toBe(2);
    expect(remote.stdout).toMatch(/BROKEN at entry 3/);
  });

  test('without a relay, or with a bad role or version, the CLI says what to pass', async () => {
    const noServer = await tabtrain(['approve', 'some-job']);
    expect(noServer.code).toBe(1);
    expect(noServer.stderr).toMatch(/--server URL or set TABTRAIN_SERVER/);
    const badRole = await inProcess(['token', 'create', '--role', 'admin', '--data-dir', relay.dataDir]);
    expect(badRole.code).not.toBe(0);
    expect(badRole.stderr).toMatch(/operator, researcher/);
    const badVersion = await inProcess(['rollback', 'j', '--to', 'x', '--server', relay.url]);
    expect(badVersion.code).not.toBe(0);
    expect(badVersion.stderr).toMatch(/version must be a non-negative integer/);
    const noToken = await inProcess(['jobs', '--server', relay.url]);
    expect(noToken.stderr).toMatch(/401 TT_ERR_UNAUTHENTICATED/);
  });
});
