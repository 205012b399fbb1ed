// What the volunteer page and its Web Worker say to each other. Every message carries a `type`;
// the worker owns the loop, the page owns the screen and the controls.

/** Where the tab is in its work, one word each, as the page shows it. */
export type Phase = 'starting' | 'fetching' | 'training' | 'uploading' | 'waiting' | 'paused' | 'stopped' | 'error';

/** The adapter (or the CPU fallback) the worker trains on. */
export type DeviceInfo = {
  backend: 'webgpu' | 'cpu';
  /** Adapter vendor / architecture / description, or why there is no WebGPU. */
  description: string;
  /** Set when the tab fell back to the CPU: what was missing. */
  fallbackReason?: string;
  /** The CPU was asked for (?cpu=1), not fallen back to. */
  forced?: boolean;
};

/** Running totals since the worker started (and credit carried over from earlier sessions). */
export type Stats = {
  jobId?: string;
  taskId?: string;
  baseVersion?: number;
  steps: number;
  gpuSteps: number;
  /** Paused between two inner steps of a leased task (its lease keeps running). */
  pausedMidTask: boolean;
  samples: number;
  /** Samples of updates the relay accepted: what this tab is credited with. */
  credit: number;
  updatesSent: number;
  updatesAccepted: number;
  bytesSent: number;
  bytesReceived: number;
  /** Dense fp32 bytes of the same updates: bytesSent vs this is the compression ratio. */
  denseBytes: number;
  /** Milliseconds spent inside trainer steps (the GPU-queue busy proxy) and since start. */
  computeMs: number;
  wallMs: number;
  stepsPerSec: number;
  samplesPerSec: number;
  recentLosses: number[];
  /** Task resumed after a reload: its id and a checksum of the error-feedback residual it loaded. */
  resumed?: { taskId: string; residualChecksum: number };
  lastError?: string;
};

export type PageSends =
  | { type: 'start'; server: string; jobId?: string; intensity: number; paused: boolean; forceCpu?: boolean; slot?: number }
  | { type: 'pause'; reason: string }
  | { type: 'resume' }
  | { type: 'intensity'; value: number };

export type WorkerSends =
  | { type: 'device'; device: DeviceInfo }
  /** The storage slot this tab holds (the page keeps it in sessionStorage to get it back after a reload). */
  | { type: 'slot'; slot: number }
  | { type: 'phase'; phase: Phase; detail?: string }
  | { type: 'stats'; stats: Stats }
  | { type: 'log'; message: string };
