// Typed HTTP client of the relay for volunteers (browser, worker, Node): every answer is checked
// against the protocol schemas; network errors, 5xx and 429 are retried with exponential backoff and
// full jitter; a 4xx becomes a RelayHttpError carrying the relay's error code. Given several relays (one
// network on a shared database), a relay that stops answering (refused, no answer in time, 5xx) is left
// for the next one at once; only when every relay has failed in a row does the client back off.
import { Value } from '@sinclair/typebox/value';
import type { AdapterLimits } from '../engine/memory-plan.ts';
import type { TSchema, Static } from '@sinclair/typebox';
import { RelaySendsShardList, type ShardList } from '../protocol/p2p.ts';
import {
  JobInfoSchema, MAX_HELD_SHARDS, RelaySendsError, RelaySendsJobs, RelaySendsManifest, RelaySendsPowChallenge, RelaySendsTask, RelaySendsUpdateAck, RelaySendsVolunteer,
  type JobInfo, type JobSummary, type Manifest, type Task, type UpdateAck,
} from '../protocol/messages.ts';
import { isErrorCode, type AnyErrorCode } from '../protocol/errors.ts';
import { PROTOCOL_HEADER, PROTOCOL_VERSION } from '../protocol/version.ts';

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** A refusal or failure: `code` is the relay's (shared/protocol/errors.ts) or one the client made up;
 * `relayCode` is what the relay sent when this client does not know it (a newer relay). */
export class RelayHttpError extends Error {
  override name = 'RelayHttpError';
  constructor(readonly status: number, readonly code: AnyErrorCode, message: string, readonly relayCode?: string) {
    super(message);
  }
}

export type RetryPolicy = { baseMs: number; maxMs: number; attempts: number };
export const defaultRetry: RetryPolicy = { baseMs: 250, maxMs: 8_000, attempts: 10 };

export type ClientOptions = {
  signal?: AbortSignal;
  retry?: RetryPolicy;
  /** told before each backoff sleep, for UIs and logs */
  onRetry?: (what: string, attempt: number, delayMs: number, reason: string) => void;
  /** this machine's clock (default Date.now); signed requests carry the relay's, learned from its answers */
  now?: () => number;
  /** told when the client leaves a relay that stopped answering for the next one */
  onFailover?: (from: string, to: string, reason: string) => void;
  /** a relay that has not begun to answer within this is taken as not answering (default 30 s; uploads,
   * whose answer comes only once the whole body is sent, wait as long as they take) */
  answerTimeoutMs?: number;
};

const ANSWER_TIMEOUT_MS = 30_000;

/** A relay's base URL as the client uses it: no trailing slash. */
export const relayBase = (url: string): string => url.replace(/\/+$/, '');

/** Resolves after ms, or rejects when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = () => { clearTimeout(t); reject(signal!.reason); };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Signs a task request for the relay's time `at` (ms): shared/security/identity.ts signTaskRequest. */
export type TaskRequestSigner = (jobId: string, at: number) => Promise<string>;

export class RelayClient {
  /** The relays, in the order given; requests go to `bases[current]` until it stops answering. */
  private readonly bases: string[];
  private current = 0;
  /** The relay's clock minus ours, from the x-tabtrain-time of its answers: signed requests carry relay time. */
  private clockOffsetMs = 0;
  constructor(servers: string | readonly string[], private readonly fetchFn: FetchLike, private readonly o: ClientOptions = {}) {
    this.bases = (typeof servers === 'string' ? [servers] : [...servers]).map(relayBase);
    if (this.bases.length === 0) throw new Error('RelayClient needs at least one relay URL');
  }

  /** The relay requests go to now. */
  get relay(): string {
    return this.bases[this.current];
  }

  /** The relay's clock as far as this client knows it: ours plus the offset its last answer showed. Lease
   * deadlines are the relay's times, so they are compared with this, not with our own clock. */
  relayNow(): number {
    return (this.o.now ?? Date.now)() + this.clockOffsetMs;
  }

  /** Registers; with `proof` (public key + solved challenge) the relay derives the id from the key. */
  async register(agent?: string, device?: string, proof?: { publicKey: string; challenge: string; nonce: string }): Promise<string> {
    const r = await this.json('POST', '/api/volunteers', { agent, device, ...proof }, RelaySendsVolunteer);
    return r.volunteerId;
  }

  /** A proof-of-work challenge to solve before registering a key. */
  async challenge(): Promise<{ challenge: string; difficulty: number }> {
    return this.json('GET', '/api/volunteers/challenge', undefined, RelaySendsPowChallenge);
  }

  async jobs(): Promise<JobSummary[]> {
    return (await this.json('GET', '/api/jobs', undefined, RelaySendsJobs)).jobs;
  }

  async job(jobId: string): Promise<JobInfo> {
    return this.json('GET', `/api/jobs/${encodeURIComponent(jobId)}`, undefined, JobInfoSchema);
  }

  /** A task, or how long to wait before asking again. With `sign`, the request is signed afresh for each
   * attempt, and once more if the relay says our clock is off (its answer told us its clock). `held`: the
   * job's shards this volunteer keeps, so the relay can give it a task on one of them. */
  async lease(jobId: string, volunteerId: string, sign?: TaskRequestSigner, adapter?: AdapterLimits, held?: readonly number[]): Promise<{ task: Task } | { retryMs: number; paused: boolean }> {
    const body = JSON.stringify({ volunteerId, ...(adapter ? { adapter } : {}), ...(held?.length ? { shards: held.slice(0, MAX_HELD_SHARDS) } : {}) });
    const init = async (): Promise<RequestInit> => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (sign) {
        const at = (this.o.now ?? Date.now)() + this.clockOffsetMs;
        headers['x-tabtrain-time'] = String(at);
        headers['x-tabtrain-signature'] = await sign(jobId, at);
      }
      return { method: 'POST', headers, body };
    };
    const path = `/api/jobs/${encodeURIComponent(jobId)}/tasks`;
    const res = await this.send('lease', path, init).catch((e: unknown) => {
      if (e instanceof RelayHttpError && e.code === 'TT_ERR_REQUEST_TIME') return this.send('lease', path, init);
      throw e;
    });
    if (res.status === 204) {
      const ms = Number(res.headers.get('x-tabtrain-retry-ms') ?? Number(res.headers.get('retry-after') ?? 1) * 1000);
      return { retryMs: Number.isFinite(ms) && ms > 0 ? ms : 1000, paused: res.headers.get('x-tabtrain-job-status') === 'paused' };
    }
    return { task: await this.checked(res, RelaySendsTask) };
  }

  async params(jobId: string, version: number): Promise<{ params: Float32Array; hash: string }> {
    const res = await this.send('params', `/api/jobs/${encodeURIComponent(jobId)}/versions/${version}/params`, { method: 'GET' });
    const bytes = await this.bytesOf(res, 'params');
    if (bytes.length % 4 !== 0) throw new RelayHttpError(res.status, 'TT_CLIENT_BAD_PARAMS', `params of version ${version} are ${bytes.length} bytes, not a whole number of fp32 values`);
    return { params: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4), hash: res.headers.get('x-tabtrain-hash') ?? '' };
  }

  /** How a version can be fetched: its hash, size, and the published deltas that end at it (with `from`,
   * only those after version `from`, the one the volunteer holds). */
  async manifest(jobId: string, version: number, from?: number): Promise<Manifest> {
    return this.json('GET', `/api/jobs/${encodeURIComponent(jobId)}/versions/${version}/manifest${from === undefined ? '' : `?from=${from}`}`, undefined, RelaySendsManifest);
  }

  /** The published delta that makes `version` from version − 1 (shared/codec/version-delta.ts). */
  async delta(jobId: string, version: number): Promise<Uint8Array> {
    const res = await this.send('delta', `/api/jobs/${encodeURIComponent(jobId)}/versions/${version}/delta`, { method: 'GET', headers: { 'accept-encoding': 'br, gzip' } });
    return this.bytesOf(res, 'delta');
  }

  async shard(jobId: string, shard: number): Promise<Uint8Array> {
    // brotli when the relay has it (Node's fetch asks for gzip only unless told; a browser decides for itself
    // and ignores this header), decoded by fetch
    const res = await this.send('shard', `/api/jobs/${encodeURIComponent(jobId)}/shards/${shard}`, { method: 'GET', headers: { 'accept-encoding': 'br, gzip' } });
    return this.bytesOf(res, 'shard');
  }

  /** Every shard's size and SHA-256 (for shards taken from peers). */
  async shardList(jobId: string): Promise<ShardList> {
    return this.json('GET', `/api/jobs/${encodeURIComponent(jobId)}/shards`, undefined, RelaySendsShardList);
  }

  /** Safe to retry: the relay answers a re-sent identical frame with the same answer, counted once. */
  async upload(taskId: string, frame: Uint8Array, signal?: AbortSignal, signature?: string): Promise<UpdateAck> {
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (signature) headers['x-tabtrain-signature'] = signature;
    const res = await this.send('upload', `/api/tasks/${encodeURIComponent(taskId)}/update`, {
      method: 'POST', headers, body: frame as BodyInit,
    }, signal);
    return this.checked(res, RelaySendsUpdateAck);
  }

  private async json<S extends TSchema>(method: string, path: string, body: unknown, schema: S): Promise<Static<S>> {
    const init: RequestInit = body === undefined ? { method } : { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
    return this.checked(await this.send(path, path, init), schema);
  }

  /** A body cut off on the way (the relay killed mid-answer: fetch throws 'terminated') is the relay being
   * unreachable, which the loop waits out, not a fault that ends it. */
  private async bytesOf(res: Response, what: string): Promise<Uint8Array> {
    try {
      return new Uint8Array(await res.arrayBuffer());
    } catch (e) {
      throw new RelayHttpError(0, 'TT_CLIENT_UNREACHABLE', `${what}: the answer from ${this.relay} was cut off (${(e as Error).message})`);
    }
  }

  private async checked<S extends TSchema>(res: Response, schema: S): Promise<Static<S>> {
    const text = await this.bytesOf(res, res.url);
    let body: unknown;
    try { body = JSON.parse(new TextDecoder().decode(text)); } catch { body = undefined; }
    if (!Value.Check(schema, body)) {
      const first = Value.Errors(schema, body).First();
      throw new RelayHttpError(res.status, 'TT_CLIENT_BAD_ANSWER', `relay answer to ${res.url} does not match the protocol at ${first?.path || '/'}: ${first?.message ?? 'not JSON'}`);
    }
    return body as Static<S>;
  }

  /** Leaves the current relay for the next; true when that one has not failed since the last answer. */
  private failOver(reason: string, failedInARow: number): boolean {
    if (this.bases.length < 2) return false;
    const from = this.relay;
    this.current = (this.current + 1) % this.bases.length;
    this.o.onFailover?.(from, this.relay, reason);
    return failedInARow < this.bases.length;
  }

  /** fetch with the answer deadline: aborted (as not answering) if no answer has begun in time. */
  private async fetchInTime(url: string, init: RequestInit, what: string, signal?: AbortSignal): Promise<Response> {
    const ms = this.o.answerTimeoutMs ?? ANSWER_TIMEOUT_MS;
    if (what === 'upload' || !(ms > 0)) return this.fetchFn(url, { ...init, signal });
    const ctl = new AbortController();
    const onAbort = () => ctl.abort(signal!.reason);
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => ctl.abort(new Error(`no answer within ${Math.round(ms / 1000)} s`)), ms);
    try {
      return await this.fetchFn(url, { ...init, signal: ctl.signal });
    } catch (e) {
      // the reason given to abort() (not answering), unless the caller's own signal stopped it
      throw ctl.signal.aborted && !signal?.aborted ? ctl.signal.reason : e;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** One request with retries; returns a 2xx response or throws. `init` may be made anew for each attempt. */
  private async send(what: string, path: string, init: RequestInit | (() => Promise<RequestInit>), signal = this.o.signal): Promise<Response> {
    const p = this.o.retry ?? defaultRetry;
    let failedInARow = 0; // relays that failed this request since one last answered
    for (let attempt = 1; ; attempt++) {
      let reason: string;
      let atLeastMs = 0; // a 429's Retry-After: backing off less would only be refused again
      let relayDown = false; // refused, no answer in time, or 5xx: worth trying another relay
      try {
        const i = typeof init === 'function' ? await init() : init;
        // every request says which protocol version this client speaks; the relay refuses one too old (426)
        const headers = { ...(i.headers as Record<string, string> | undefined), [PROTOCOL_HEADER]: String(PROTOCOL_VERSION) };
        const res = await this.fetchInTime(this.relay + path, { ...i, headers }, what, signal);
        const relayTime = Number(res.headers.get('x-tabtrain-time'));
        if (relayTime > 0) this.clockOffsetMs = relayTime - (this.o.now ?? Date.now)();
        if (res.ok) return res;
        // 408: the relay's own deadline ran out on a request it was too busy to finish (a loaded relay): sent again
        if (res.status < 500 && res.status !== 429 && res.status !== 408) {
          const body: unknown = await res.json().catch(() => undefined);
          if (!Value.Check(RelaySendsError, body)) throw new RelayHttpError(res.status, 'TT_CLIENT_UNKNOWN_ERROR', `${what} failed with HTTP ${res.status}`);
          const { code, message } = body.error;
          throw isErrorCode(code) ? new RelayHttpError(res.status, code, message) : new RelayHttpError(res.status, 'TT_CLIENT_UNKNOWN_ERROR', `${code}: ${message}`, code);
        }
        reason = `HTTP ${res.status} from ${this.relay}`;
        // a 429 is a relay that answers and asks us to slow down, a 408 one that answers but was slow: stay with it
        if (res.status === 429) atLeastMs = Math.min(p.maxMs * 8, 1000 * (Number(res.headers.get('retry-after')) || 0));
        else if (res.status !== 408) relayDown = true;
        await res.body?.cancel().catch(() => undefined);
      } catch (e) {
        if (e instanceof RelayHttpError || signal?.aborted) throw e;
        const cause = (e as Error & { cause?: { code?: string } }).cause?.code;
        reason = `${(e as Error).message}${cause ? ` (${cause})` : ''} from ${this.relay}`;
        relayDown = true;
      }
      if (attempt >= p.attempts) throw new RelayHttpError(0, 'TT_CLIENT_UNREACHABLE', `${what} failed ${attempt} times; last: ${reason}`);
      // another relay that has not failed yet is tried at once; once all have, the usual backoff
      if (relayDown && this.failOver(reason, ++failedInARow)) continue;
      if (failedInARow >= this.bases.length) failedInARow = 0;
      // full jitter: uniform in [0, min(max, base·2^attempt)]
      const delay = atLeastMs + Math.random() * Math.min(p.maxMs, p.baseMs * 2 ** attempt);
      this.o.onRetry?.(what, attempt, delay, reason);
      await sleep(delay, signal);
    }
  }
}
