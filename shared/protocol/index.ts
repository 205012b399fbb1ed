// The wire protocol in one import: schemas and types (messages.ts) and the binary update frame (frame.ts).
export * from './messages.ts';
export * from './frame.ts';
