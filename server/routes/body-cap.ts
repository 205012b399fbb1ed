// A preParsing stream that counts a request body's bytes as they arrive and fails the moment they pass a
// cap, whatever the framing: a chunked body announces no length, so a check on Content-Length alone
// would let it run to the route's absolute limit before anything looked at it.
import { Transform, type Readable } from 'node:stream';
import { RelayError } from '../errors.ts';

/** `payload` through a counter: past `cap` bytes it errors with 413 TT_ERR_BODY_TOO_LARGE (`tooLarge`
 * says why); `onBytes` sees every chunk first and may throw to stop the body (its error is passed on). */
export function capBody(payload: Readable, cap: number, tooLarge: (received: number) => string, onBytes?: (n: number) => void): Readable {
  let received = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      received += chunk.length;
      if (received > cap) return done(new RelayError('TT_ERR_BODY_TOO_LARGE', tooLarge(received)));
      try {
        onBytes?.(chunk.length);
      } catch (e) {
        return done(e as Error);
      }
      done(null, chunk);
    },
  });
  // the source is left unread after an error; the route answers with Connection: close, so the socket goes
  payload.on('error', (e) => counter.destroy(e));
  payload.pipe(counter);
  return counter;
}
