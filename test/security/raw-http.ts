// Raw HTTP/1.1 over a TCP socket, for attacks a fetch client cannot make: a chunked body that never
// ends, a body trickled a byte at a time, many sockets held open. Bytes are written by hand and the
// answer parsed by hand, so the test sees exactly what the relay did and when it closed the socket.
import { connect, type Socket } from 'node:net';

export type RawAnswer = { status: number; headers: Record<string, string>; body: string };

export type RawConnection = {
  socket: Socket;
  /** bytes of body written so far (chunk framing not counted) */
  sent(): number;
  write(bytes: Uint8Array | string): Promise<void>;
  /** one chunk of a chunked body */
  chunk(bytes: Uint8Array): Promise<void>;
  /** the first answer the relay sends; rejects if the socket closes without one */
  answer: Promise<RawAnswer>;
  /** resolves when the socket is closed (by either side) */
  closed: Promise<void>;
};

/** Opens a socket to `url`'s host and port; resolves once connected. */
export function openRaw(url: string): Promise<RawConnection> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: u.hostname, port: Number(u.port) }, () => resolve(conn));
    socket.once('error', reject);
    let received = Buffer.alloc(0);
    let bodySent = 0;
    let settle: (a: RawAnswer) => void;
    let fail: (e: Error) => void;
    const answer = new Promise<RawAnswer>((res, rej) => { settle = res; fail = rej; });
    answer.catch(() => undefined); // a caller that only waits for `closed` need not look at the answer
    const closed = new Promise<void>((res) => socket.once('close', () => res()));
    const tryParse = () => {
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine, ...lines] = received.subarray(0, end).toString('latin1').split('\r\n');
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      const length = Number(headers['content-length'] ?? 0);
      if (received.length < end + 4 + length) return;
      settle({ status: Number(statusLine.split(' ')[1]), headers, body: received.subarray(end + 4, end + 4 + length).toString('utf8') });
    };
    socket.on('data', (d) => { received = Buffer.concat([received, d]); tryParse(); });
    socket.on('error', () => undefined); // a reset after the answer is part of what is tested, not a failure
    socket.once('close', () => { tryParse(); fail(new Error(`socket closed without an answer (${received.length} bytes received)`)); });
    const write = (bytes: Uint8Array | string) => new Promise<void>((res) => {
      if (socket.destroyed || !socket.writable) return res(); // the relay closed it: writing more is moot
      socket.write(bytes, () => res());
    });
    const conn: RawConnection = {
      socket, answer, closed, write,
      sent: () => bodySent,
      chunk: async (bytes) => {
        bodySent += bytes.length;
        await write(`${bytes.length.toString(16)}\r\n`);
        await write(bytes);
        await write('\r\n');
      },
    };
  });
}

/** Request line and headers (ends with the blank line); `headers` as given, Host added. */
export function head(method: string, path: string, headers: Record<string, string>): string {
  return `${method} ${path} HTTP/1.1\r\nhost: relay\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}

/** The JSON error body's code. */
export const codeOf = (a: RawAnswer): string | undefined => {
  try { return (JSON.parse(a.body) as { error?: { code?: string } }).error?.code; } catch { return undefined; }
};

/** Per-test bound for attacks the relay must cut short: its answer or its closing the socket comes in well
 * under a second here (small deadlines), and an unprotected relay never answers (or only after Node's own
 * 60–300 s defaults), so such a test fails by running out of this, far from a slow machine's margin. */
export const CUT_SHORT_MS = 30_000;
