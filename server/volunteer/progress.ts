// Terminal progress for the Node volunteer: one status line, rewritten in place on a TTY and printed
// every few seconds otherwise (logs, CI), plus a line for each phase change.
import { bytes, count, rate } from '../../shared/util/format.ts';
import type { Phase, Stats } from '../../shared/volunteer/status.ts';

export function progressLine(phase: Phase, s: Stats): string {
  const loss = s.recentLosses.length ? s.recentLosses[s.recentLosses.length - 1].toFixed(3) : '–';
  const ratio = s.bytesSent > 0 && s.denseBytes > 0 ? `${(s.denseBytes / s.bytesSent).toFixed(1)}×` : '–';
  return [
    `${phase.padEnd(9)}`,
    `job ${s.jobId ?? '–'} v${s.baseVersion ?? '–'}`,
    `${rate(s.stepsPerSec)} steps/s`,
    `${rate(s.samplesPerSec)} samples/s`,
    `${count(s.samples)} samples`,
    `credit ${count(s.credit)}`,
    `loss ${loss}`,
    `sent ${bytes(s.bytesSent)} (${ratio} smaller)`,
    `updates ${s.updatesAccepted}/${s.updatesSent}`,
  ].join(' | ');
}

export function createProgress(out: NodeJS.WriteStream = process.stdout, everyMs = 5000) {
  const tty = Boolean(out.isTTY);
  let lastPrint = 0;
  return {
    phase(phase: Phase, detail?: string): void {
      if (tty) out.write('\r\x1b[2K');
      out.write(`[tabtrain] ${phase}${detail ? `: ${detail}` : ''}\n`);
    },
    stats(phase: Phase, s: Stats, force = false): void {
      const line = progressLine(phase, s);
      if (tty) out.write(`\r\x1b[2K${line.slice(0, (out.columns ?? 200) - 1)}`);
      else if (force || Date.now() - lastPrint >= everyMs) {
        lastPrint = Date.now();
        out.write(`[tabtrain] ${line}\n`);
      }
    },
  };
}
