// Upload bodies in flight, per client address: how many streams are open and how many of their bytes the
// relay holds. A body is buffered whole before the update is checked, so without this one address could
// open hundreds of uploads at once and make the relay hold gigabytes; with it, an address holds at most
// `bytesPerAddress` of upload buffers and `streamsPerAddress` open uploads, whatever the framing.
import { RelayError } from '../errors.ts';

export type InFlightOptions = {
  /** upload bodies one address may be sending at once */
  streamsPerAddress: number;
  /** upload bytes one address may have received and not yet been answered for */
  bytesPerAddress: number;
};

/** One upload's share of its address's budget; release() is idempotent (a response's close event and
 * an aborted request may both call it). */
export type InFlightTicket = { add(bytes: number): void; release(): void };

const tooMany = (what: string) => Object.assign(
  new RelayError('TT_ERR_RATE_LIMITED', `${what} from this address are already in flight; wait for your other uploads to finish`),
  { retryAfterSeconds: 1 },
);

export class InFlightUploads {
  private readonly byAddress = new Map<string, { streams: number; bytes: number }>();

  constructor(readonly opts: InFlightOptions) {
    if (!(opts.streamsPerAddress >= 1) || !(opts.bytesPerAddress >= 1)) throw new Error('in-flight upload caps must be ≥ 1');
  }

  /** Opens one upload for this address, or throws 429 TT_ERR_RATE_LIMITED when it has too many open. */
  open(address: string): InFlightTicket {
    const a = this.byAddress.get(address) ?? { streams: 0, bytes: 0 };
    if (a.streams >= this.opts.streamsPerAddress) throw tooMany(`${a.streams} uploads (the most one address may send at once)`);
    a.streams++;
    this.byAddress.set(address, a);
    let held = 0;
    let open = true;
    return {
      /** Counts bytes as they arrive; throws 429 the moment the address would hold more than its cap. */
      add: (bytes) => {
        if (!open) return;
        if (a.bytes + bytes > this.opts.bytesPerAddress) throw tooMany(`upload bytes over ${this.opts.bytesPerAddress}`);
        a.bytes += bytes;
        held += bytes;
      },
      release: () => {
        if (!open) return;
        open = false;
        a.streams--;
        a.bytes -= held;
        if (a.streams === 0) this.byAddress.delete(address);
      },
    };
  }

  /** Open uploads and held bytes over all addresses (for /metrics). */
  totals(): { streams: number; bytes: number } {
    let streams = 0, bytes = 0;
    for (const a of this.byAddress.values()) { streams += a.streams; bytes += a.bytes; }
    return { streams, bytes };
  }

  /** Open uploads and held bytes of one address. */
  of(address: string): { streams: number; bytes: number } {
    const a = this.byAddress.get(address);
    return { streams: a?.streams ?? 0, bytes: a?.bytes ?? 0 };
  }
}
