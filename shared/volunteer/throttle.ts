// Pause and duty cycle for the volunteer's inner steps, applied around each trainer step, so the loop
// itself needs no hook: a paused tab simply stops before its next step (its lease may then expire,
// and the loop drops that task). Intensity p ∈ (0, 1] means: after a step that took d ms, rest
// d·(1 − p)/p ms, so the device is busy about p of the time.
export class Throttle {
  private paused = false;
  private intensity = 1;
  private wake: (() => void)[] = [];

  setPaused(paused: boolean): void {
    this.paused = paused;
    if (!paused) this.wake.splice(0).forEach((f) => f());
  }

  isPaused(): boolean {
    return this.paused;
  }

  /** Clamped to [0.05, 1]: a slider at zero would never finish a task; pause is the way to stop. */
  setIntensity(p: number): void {
    this.intensity = Number.isFinite(p) ? Math.min(1, Math.max(0.05, p)) : 1;
  }

  /** Resolves at once unless paused; then when resumed or when `signal` aborts. */
  async gate(signal?: AbortSignal): Promise<void> {
    while (this.paused && !signal?.aborted) {
      await new Promise<void>((resolve) => {
        this.wake.push(resolve);
        signal?.addEventListener('abort', () => resolve(), { once: true });
      });
    }
  }

  /** Rest after work that took `busyMs`, per the intensity. */
  async rest(busyMs: number, signal?: AbortSignal): Promise<void> {
    const ms = (busyMs * (1 - this.intensity)) / this.intensity;
    if (ms < 1 || signal?.aborted) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
    });
  }
}
