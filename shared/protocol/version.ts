// The protocol version: every client sends it on each request (header x-tabtrain-protocol), and the relay
// refuses registration and task requests from a client older than it accepts with 426
// TT_ERR_CLIENT_TOO_OLD, saying what to do (reload the page, update the command line). A request without
// the header is taken as version 1: every client made before the header existed speaks version 1, so today
// they are served, and they are refused, like any version-1 client, as soon as the relay stops accepting 1.

/** The version this code speaks. Raise it on any change an older client would get wrong. */
export const PROTOCOL_VERSION = 1;
/** The oldest client version a relay of this code serves (a relay may be told to demand newer). */
export const MIN_PROTOCOL_VERSION = 1;
/** The header that carries a client's version. */
export const PROTOCOL_HEADER = 'x-tabtrain-protocol';
/** What a request without the header is taken to speak. */
export const VERSION_WITHOUT_HEADER = 1;

export const TOO_OLD_HINT = 'reload the page (a browser tab) or update the tabtrain command line to the relay\'s release (a Node volunteer)';

export type ProtocolVerdict =
  | { ok: true; version: number }
  | { ok: false; code: 'TT_ERR_CLIENT_TOO_OLD' | 'TT_ERR_RELAY_TOO_OLD' | 'TT_ERR_VALIDATION'; message: string };

/** Whether a relay that serves versions min..max takes a request whose header says `header`. */
export function checkProtocol(header: string | undefined, accepts: { min: number; max: number }): ProtocolVerdict {
  const version = header === undefined || header === '' ? VERSION_WITHOUT_HEADER : /^\d{1,6}$/.test(header.trim()) ? Number(header) : NaN;
  if (!Number.isInteger(version)) {
    return { ok: false, code: 'TT_ERR_VALIDATION', message: `header ${PROTOCOL_HEADER} must be a whole number (the client's protocol version, now ${PROTOCOL_VERSION}); got "${header}"` };
  }
  if (version < accepts.min) {
    return { ok: false, code: 'TT_ERR_CLIENT_TOO_OLD', message: `this client speaks protocol version ${version}, and this relay needs version ${accepts.min} or newer: ${TOO_OLD_HINT}` };
  }
  if (version > accepts.max) {
    return { ok: false, code: 'TT_ERR_RELAY_TOO_OLD', message: `this client speaks protocol version ${version}, newer than this relay's ${accepts.max}: use the tabtrain release the relay runs, or ask its operator to update it` };
  }
  return { ok: true, version };
}
