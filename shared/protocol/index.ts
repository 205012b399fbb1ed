// The wire protocol in one import: schemas and types (messages.ts), the binary update frame (frame.ts),
// the error catalogue (errors.ts) and the protocol version (version.ts).
export * from './messages.ts';
export * from './frame.ts';
export * from './errors.ts';
export * from './version.ts';
