// The `tabtrain` command line. `start` runs the relay; operator subcommands come from server/ops/cli.ts.
import { Command, InvalidArgumentError } from 'commander';
import { buildApp } from '../app.ts';
import { peerOrigin } from '../peers.ts';
import { DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, defaultTimeouts } from '../transport.ts';
import { defaultRetention } from '../store/retention.ts';
import { byteSize } from './sizes.ts';
import { checkDatabaseUrl, databaseUrlFrom } from '../store/database.ts';
import { registerOpsCommands } from '../ops/cli.ts';
import { registerVolunteerCommand } from '../volunteer/cli.ts';
import { demoJobs, demoNames, type DemoName } from '../../shared/jobs/demos.ts';

const int = (name: string, min = 0) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}, got "${v}"`);
  return n;
};

/** --trust-proxy: "true" or addresses/CIDRs, as Fastify's trustProxy takes them. */
const trustProxy = (v: string): boolean | string => {
  if (v === 'true') return true;
  if (!/^[0-9a-fA-F.:/, ]+$/.test(v)) throw new InvalidArgumentError(`--trust-proxy takes the proxy's addresses or CIDRs separated by commas (or "true"), got "${v}"`);
  return v;
};

/** --peers: the other relays' URLs, comma-separated. */
const peers = (v: string): string[] => v.split(',').map((s) => s.trim()).filter(Boolean).map((u) => {
  try {
    return peerOrigin(u);
  } catch {
    throw new InvalidArgumentError(`--peers takes the other relays' http(s) URLs separated by commas, like https://relay2.example,https://relay3.example; got "${u}"`);
  }
});

const databaseUrlOption = (v: string): string => {
  try {
    return checkDatabaseUrl(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
};

const demoName = (v: string): 'mnist' | DemoName => {
  if (v === 'mnist' || (demoNames as string[]).includes(v)) return v as 'mnist' | DemoName;
  throw new InvalidArgumentError(`--demo must be one of ${['mnist', ...demoNames].join(', ')}, got "${v}"`);
};

export function buildProgram(): Command {
  const program = new Command('tabtrain').description('Tabtrain: train AI models in browser tabs');
  program.command('start')
    .description('run the relay: HTTP API, scheduler, storage (SQLite, or a shared Postgres), and the volunteer page')
    .option('--port <n>', 'port to listen on (env PORT)', int('--port'), Number(process.env.PORT ?? 8080))
    .option('--host <addr>', 'address to bind', '0.0.0.0')
    .option('--database-url <url>', 'run on a shared Postgres database, postgres://user@host:5432/db, instead of SQLite in --data-dir (env TABTRAIN_DATABASE_URL); several relays may share one', databaseUrlOption)
    .option('--data-dir <dir>', 'data directory (env TABTRAIN_DATA_DIR)', process.env.TABTRAIN_DATA_DIR ?? './data')
    .option('--sweep-ms <n>', 'how often leases expire and round timers fire', int('--sweep-ms'), 1000)
    .option('--lease-ms <n>', 'lease length of the default job, when it is created', int('--lease-ms'))
    .option('--keep-versions <n>', 'checkpoints kept in full: the newest n versions (plus every --keep-every-th and the best)', int('--keep-versions', 1), defaultRetention.keepLast)
    .option('--keep-every <n>', 'older checkpoints kept: every n-th version (1 keeps them all)', int('--keep-every', 1), defaultRetention.keepEvery)
    .option('--keep-bytes <size>', "most bytes of checkpoints kept per job, e.g. 20GB or 512MiB (the oldest go first; never what the staleness bound needs, nor the best version)", byteSize('--keep-bytes'))
    .option('--trust-proxy <proxies>', 'behind a reverse proxy: its addresses/CIDRs, comma-separated (or "true" for any), whose X-Forwarded-For names the volunteer', trustProxy)
    .option('--max-connections-per-address <n>', 'open connections one client address may hold (0 = no cap; trusted proxies are not capped)', int('--max-connections-per-address'), DEFAULT_MAX_CONNECTIONS_PER_ADDRESS)
    .option('--request-timeout-ms <n>', 'a request, body included, must arrive within this (0 = none)', int('--request-timeout-ms'), defaultTimeouts.requestMs)
    .option('--headers-timeout-ms <n>', "a request's headers must arrive within this (0 = none)", int('--headers-timeout-ms'), defaultTimeouts.headersMs)
    .option('--keep-alive-timeout-ms <n>', 'idle keep-alive connections close after this', int('--keep-alive-timeout-ms', 1), defaultTimeouts.keepAliveMs)
    .option('--idle-timeout-ms <n>', 'sockets with no traffic close after this (0 = never)', int('--idle-timeout-ms'), defaultTimeouts.idleMs)
    .option('--upload-streams-per-address <n>', 'upload bodies one address may send at once (default 32)', int('--upload-streams-per-address', 1))
    .option('--upload-bytes-per-address <n>', 'upload bytes one address may have in flight (default: one fp32 update of the largest version stored, about 2 GiB; bodies past 1 MiB wait on disk)', int('--upload-bytes-per-address', 1))
    .option('--peers <urls>', "the other relays of this network (sharing its database), comma-separated: volunteer pages served here may fail over to them (?relays=…)", peers)
    .option('--no-p2p', 'no peer-to-peer sharing between volunteer tabs: everything comes from the relay')
    .option('--ice-server <url>', 'a STUN/TURN server for tabs sharing over WebRTC (repeatable; none needed on loopback or most LANs)', (v: string, all: string[] = []) => [...all, v])
    .option('--quiet', 'log warnings and errors only')
    .option('--demo <name>', `the job a fresh relay starts with: ${['mnist', ...demoNames].join(' or ')} (text from an npm package, GPT-2 BPE tokens)`, demoName, 'mnist')
    .option('--no-renew-default-job', 'do not create a fresh default job when every job, the last default one included, is done')
    .action(async (o: {
      port: number; host: string; dataDir: string; databaseUrl?: string; sweepMs: number; leaseMs?: number; keepVersions: number; keepEvery: number; keepBytes?: number; trustProxy?: boolean | string; quiet?: boolean;
      maxConnectionsPerAddress: number; requestTimeoutMs: number; headersTimeoutMs: number; keepAliveTimeoutMs: number; idleTimeoutMs: number;
      uploadStreamsPerAddress?: number; uploadBytesPerAddress?: number; renewDefaultJob: boolean; peers?: string[]; p2p: boolean; iceServer?: string[]; demo: 'mnist' | DemoName;
    }) => {
      const databaseUrl = databaseUrlFrom(o.databaseUrl);
      if (databaseUrl !== undefined) {
        try {
          checkDatabaseUrl(databaseUrl); // the flag was checked as parsed; the environment's value is checked here
        } catch (e) {
          program.error(`error: ${(e as Error).message}`, { exitCode: 2 });
        }
      }
      const relay = await buildApp({
        dataDir: o.dataDir, databaseUrl, port: o.port, host: o.host, sweepMs: o.sweepMs, retention: { keepLast: o.keepVersions, keepEvery: o.keepEvery, keepBytes: o.keepBytes }, trustProxy: o.trustProxy,
        maxConnectionsPerAddress: o.maxConnectionsPerAddress,
        timeouts: { requestMs: o.requestTimeoutMs, headersMs: o.headersTimeoutMs, keepAliveMs: o.keepAliveTimeoutMs, idleMs: o.idleTimeoutMs },
        uploadsInFlight: { streamsPerAddress: o.uploadStreamsPerAddress, bytesPerAddress: o.uploadBytesPerAddress },
        logger: { level: o.quiet ? 'warn' : 'info' },
        peers: o.peers, p2p: { enabled: o.p2p, iceServers: (o.iceServer ?? []).map((urls) => ({ urls })) },
        // a demo other than MNIST replaces the default job (volunteers train the first running job)
        ...(o.demo === 'mnist'
          ? { defaultJob: o.leaseMs ? { leaseMs: o.leaseMs } : true, renewDefaultJob: o.renewDefaultJob }
          : { defaultJob: false, renewDefaultJob: false, demo: o.demo, demoOverrides: o.leaseMs ? { hyperparameters: { ...demoJobs[o.demo].hyperparameters, leaseMs: o.leaseMs } } : undefined }),
      });
      // One plain line that scripts (and the crash test) can wait for.
      process.stdout.write(`tabtrain relay listening on ${relay.url}\n`);
      const stop = () => { void relay.close().then(() => process.exit(0)); };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
  registerOpsCommands(program);
  registerVolunteerCommand(program);
  return program;
}

await buildProgram().parseAsync(process.argv);
