// Operator and researcher subcommands of `tabtrain`: tokens, submit, approve/pause/resume/rollback,
// jobs, and the audit log. They talk to the relay over HTTP (--server or TABTRAIN_SERVER, token from
// --token or TABTRAIN_TOKEN); `token create` and `audit verify` can instead open the relay's database
// directly with --data-dir (bootstrapping the first operator token; checking a log whose relay is down).
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import Database from 'better-sqlite3';
import { Command, InvalidArgumentError, Option } from 'commander';
import { listAudit, verifyAudit, type AuditVerdict } from './audit.ts';
import { migrateOps } from './store.ts';
import { hasAuditTable } from '../store/sqlite-ops.ts';
import { createToken, isRole, ROLES, type Role } from './tokens.ts';

/** The relay's database file inside a data directory (server/app.ts). */
export const dbFile = (dataDir: string) => join(dataDir, 'tabtrain.sqlite');

class CliError extends Error {}

type Remote = { server?: string; token?: string };

function remoteOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--server <url>', 'relay URL').env('TABTRAIN_SERVER'))
    .addOption(new Option('--token <token>', 'API token').env('TABTRAIN_TOKEN'));
}

function serverOf(o: Remote): string {
  if (!o.server) throw new CliError('no relay given: pass --server URL or set TABTRAIN_SERVER');
  return o.server.replace(/\/+$/, '');
}

/** One HTTP call to the relay; a refusal becomes a CliError carrying the relay's code and message. */
async function call(o: Remote, method: string, path: string, body?: unknown): Promise<any> {
  const headers: Record<string, string> = {};
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  let payload: BodyInit | undefined;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) { headers['content-type'] = 'application/json'; payload = JSON.stringify(body); }
  let res: Response;
  try {
    res = await fetch(serverOf(o) + path, { method, headers, body: payload });
  } catch (e) {
    throw new CliError(`cannot reach the relay at ${serverOf(o)} (${(e as Error).cause ?? (e as Error).message}); check --server / TABTRAIN_SERVER`);
  }
  const text = await res.text();
  let json: any;
  try { json = JSON.parse(text); } catch { json = undefined; }
  if (!res.ok) {
    const err = json?.error;
    throw new CliError(err ? `${res.status} ${err.code}: ${err.message}` : `${res.status}: ${text.slice(0, 200)}`);
  }
  return json;
}

const out = (line: string) => process.stdout.write(line + '\n');
const note = (line: string) => process.stderr.write(line + '\n');

/** Wraps an action so a CliError prints one line and exits 1 (a broken audit chain exits 2 itself). */
const run = <A extends unknown[]>(f: (...a: A) => Promise<void>) => async (...a: A) => {
  try {
    await f(...a);
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    note(`tabtrain: ${e.message}`);
    process.exitCode = 1;
  }
};

function openDb(dataDir: string, readonly: boolean): Database.Database {
  try {
    const db = new Database(dbFile(dataDir), { readonly, fileMustExist: readonly });
    db.pragma('busy_timeout = 5000');
    return db;
  } catch (e) {
    throw new CliError(`cannot open the relay database in ${dataDir} (${(e as Error).message}); pass the relay's --data-dir`);
  }
}

const versionArg = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`version must be a non-negative integer, got "${v}"`);
  return n;
};

export function printVerdict(v: AuditVerdict): void {
  if (v.ok) out(`audit log OK: ${v.entries} entries, head ${v.headHash}`);
  else {
    out(`audit log BROKEN at entry ${v.brokenSeq}: ${v.reason}`);
    process.exitCode = 2;
  }
}

export function registerOpsCommands(program: Command): void {
  // ---- tokens -------------------------------------------------------------------------------------
  const token = program.command('token').description('API tokens for researchers and operators');
  remoteOptions(token.command('create'))
    .description('create a token; prints the secret alone on stdout (shown once)')
    .addOption(new Option('--role <role>', 'operator or researcher').choices([...ROLES]).makeOptionMandatory())
    .option('--name <name>', 'who it is for', 'unnamed')
    .option('--data-dir <dir>', 'write to the relay database directly (needed for the first operator token)')
    .action(run(async (o: Remote & { role: string; name: string; dataDir?: string }) => {
      if (!isRole(o.role)) throw new CliError(`--role must be one of ${ROLES.join(', ')}`);
      const role: Role = o.role;
      let made: { id: string; token: string };
      if (o.dataDir) {
        const db = openDb(o.dataDir, false);
        try {
          migrateOps(db);
          made = createToken(db, { role, name: o.name, actor: `cli:data-dir:${process.env.USER ?? 'unknown'}` });
        } finally { db.close(); }
      } else {
        made = await call(o, 'POST', '/api/ops/tokens', { role, name: o.name });
      }
      note(`created ${role} token ${made.id} for ${o.name}; keep the secret below, it is not shown again`);
      out(made.token);
    }));
  remoteOptions(token.command('list')).description('list tokens (operators)').action(run(async (o: Remote) => {
    const { tokens } = await call(o, 'GET', '/api/ops/tokens');
    for (const t of tokens) out(`${t.id}  ${t.role.padEnd(10)} ${t.name}${t.revokedAt ? '  (revoked)' : ''}`);
  }));
  remoteOptions(token.command('revoke <tokenId>')).description('revoke a token (operators)').action(run(async (id: string, o: Remote) => {
    await call(o, 'DELETE', `/api/ops/tokens/${encodeURIComponent(id)}`);
    out(`revoked ${id}`);
  }));

  // ---- jobs ---------------------------------------------------------------------------------------
  remoteOptions(program.command('submit <jobJson>'))
    .description('submit a job (job.json) with its dataset; it waits for an operator to approve it')
    .requiredOption('--data <file>', 'the dataset: a UTF-8 text corpus, or labelled arrays (JSON or CSV)')
    .action(run(async (jobJson: string, o: Remote & { data: string }) => {
      let spec: string, data: Buffer;
      try { spec = readFileSync(jobJson, 'utf8'); } catch (e) { throw new CliError(`cannot read ${jobJson}: ${(e as Error).message}`); }
      try { data = readFileSync(o.data); } catch (e) { throw new CliError(`cannot read --data ${o.data}: ${(e as Error).message}`); }
      const form = new FormData();
      form.set('spec', spec);
      form.set('data', new Blob([new Uint8Array(data)]), basename(o.data));
      const r = await call(o, 'POST', '/api/ops/jobs', form);
      note(`submitted "${r.name}": ${r.model.kind}, ${r.paramCount} parameters, ${r.dataset.shards} shards; status ${r.status} (an operator approves it with \`tabtrain approve ${r.jobId}\`)`);
      out(r.jobId);
    }));
  remoteOptions(program.command('jobs')).description('list jobs (operators: all; researchers: their own)').action(run(async (o: Remote) => {
    const { jobs } = await call(o, 'GET', '/api/ops/jobs');
    for (const j of jobs) out(`${j.jobId}  ${j.status.padEnd(8)} v${j.version}  ${j.name} (${j.researcher})`);
  }));
  for (const [name, what] of [['approve', 'approve a pending job so volunteers get its tasks (operators)'], ['pause', 'pause a running job'], ['resume', 'resume a paused job']] as const) {
    remoteOptions(program.command(`${name} <jobId>`)).description(what).action(run(async (jobId: string, o: Remote) => {
      const r = await call(o, 'POST', `/api/ops/jobs/${encodeURIComponent(jobId)}/${name}`);
      out(`${r.jobId} is ${r.status} at version ${r.version}`);
    }));
  }
  remoteOptions(program.command('rollback <jobId>'))
    .description("make an earlier version current again (its parameters and outer momentum)")
    .requiredOption('--to <version>', 'the version to roll back to', versionArg)
    .action(run(async (jobId: string, o: Remote & { to: number }) => {
      const r = await call(o, 'POST', `/api/ops/jobs/${encodeURIComponent(jobId)}/rollback`, { version: o.to });
      out(`${r.jobId} rolled back to version ${r.version} (${r.status})`);
    }));

  // ---- audit --------------------------------------------------------------------------------------
  const audit = program.command('audit').description('the hash-chained audit log');
  remoteOptions(audit.command('verify'))
    .description('recompute the hash chain and report the first broken entry (exit 2 when broken)')
    .option('--data-dir <dir>', 'read the relay database directly instead of asking the relay')
    .action(run(async (o: Remote & { dataDir?: string }) => {
      if (o.dataDir) {
        const db = openDb(o.dataDir, true);
        try {
          if (!hasAuditTable(db)) throw new CliError(`the database in ${o.dataDir} has no audit log`);
          printVerdict(verifyAudit(db));
        } finally { db.close(); }
      } else {
        printVerdict(await call(o, 'GET', '/api/ops/audit/verify'));
      }
    }));
  remoteOptions(audit.command('show'))
    .description('print audit entries')
    .option('--job <jobId>', 'only this job')
    .option('--data-dir <dir>', 'read the relay database directly')
    .action(run(async (o: Remote & { job?: string; dataDir?: string }) => {
      let entries;
      if (o.dataDir) {
        const db = openDb(o.dataDir, true);
        try { entries = listAudit(db, { jobId: o.job, limit: 1000 }); } finally { db.close(); }
      } else {
        entries = (await call(o, 'GET', `/api/ops/audit?limit=1000${o.job ? `&jobId=${encodeURIComponent(o.job)}` : ''}`)).entries;
      }
      for (const e of entries) out(`${String(e.seq).padStart(5)} ${new Date(e.at).toISOString()} ${e.action.padEnd(13)} ${e.jobId ?? '-'}  ${e.actor}  ${JSON.stringify(e.detail).slice(0, 160)}  ${e.hash.slice(0, 12)}`);
    }));
}
