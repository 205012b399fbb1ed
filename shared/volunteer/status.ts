// What a volunteer (tab or Node) reports about itself: its phase, its device and its running totals.
// The page, the terminal progress line and tests read these; the meter (./meter.ts) derives them.
export type { Phase } from './events.ts';

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
  /** The current task's size, H inner steps (on swarm jobs the relay sizes it to this device). */
  taskSteps?: number;
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
