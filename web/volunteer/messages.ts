// What the volunteer page and its Web Worker say to each other. Every message carries a `type`;
// the worker owns the loop, the page owns the screen and the controls.
import type { DeviceInfo, Phase, Stats } from '../../shared/volunteer/status.ts';

export type PageSends =
  /** servers: the relay that served the page first, then the others given in ?relays= (failover order) */
  | { type: 'start'; servers: string[]; jobId?: string; intensity: number; paused: boolean; forceCpu?: boolean; slot?: number; peers?: boolean }
  /** A piece the worker asked for (piece-get), from a peer and checked; no bytes: fetch from the relay. */
  | { type: 'piece'; id: number; bytes?: ArrayBuffer }
  | { type: 'pause'; reason: string }
  | { type: 'resume' }
  | { type: 'intensity'; value: number };

export type WorkerSends =
  | { type: 'device'; device: DeviceInfo }
  /** The storage slot this tab holds (the page keeps it in sessionStorage to get it back after a reload). */
  | { type: 'slot'; slot: number }
  | { type: 'phase'; phase: Phase; detail?: string }
  | { type: 'stats'; stats: Stats }
  | { type: 'log'; message: string }
  /** the relay in use stopped answering and the worker went on with `relay` */
  | { type: 'failover'; from: string; relay: string; reason: string }
  /** Peer-to-peer sharing (web/volunteer/peers.ts): ask peers for a piece, hold one, drop a bad sender. */
  | { type: 'piece-get'; id: number; hash: string; bytes: number }
  | { type: 'piece-have'; hash: string; bytes: ArrayBuffer }
  | { type: 'piece-bad'; hash: string }
  | { type: 'piece-will'; hash: string };
