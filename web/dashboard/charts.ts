// Small wrappers over uPlot for the dashboard and job pages: a line chart that fits its container and
// takes new data in place (one chart object per curve, rebuilt only when its series change).
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export type Series = { label: string; stroke: string; scale?: string };

export class LineChart {
  private plot: uPlot | undefined;
  constructor(private readonly el: HTMLElement, private readonly opts: { title: string; x: 'time' | 'version'; series: Series[]; height?: number; yLabel?: string }) {}

  /** data[0] is x (seconds since epoch for time charts), then one array per series. */
  set(data: (number | null)[][]): void {
    const aligned = data as uPlot.AlignedData;
    if (this.plot) {
      this.plot.setData(aligned);
      return;
    }
    const width = Math.max(260, this.el.clientWidth || 480);
    const axes: uPlot.Axis[] = [
      { label: this.opts.x === 'version' ? 'version' : undefined },
      { label: this.opts.yLabel, size: 56 },
    ];
    const scales: uPlot.Scales = { x: { time: this.opts.x === 'time' } };
    const hasRight = this.opts.series.some((s) => s.scale === 'right');
    if (hasRight) {
      scales.right = { auto: true };
      axes.push({ scale: 'right', side: 1, grid: { show: false }, size: 56 });
    }
    this.plot = new uPlot({
      title: this.opts.title, width, height: this.opts.height ?? 200, scales, axes,
      series: [{ label: this.opts.x }, ...this.opts.series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, scale: s.scale ?? 'y', points: { show: this.opts.x === 'version' } }))],
    }, aligned, this.el);
    new ResizeObserver(() => this.plot?.setSize({ width: Math.max(260, this.el.clientWidth), height: this.opts.height ?? 200 })).observe(this.el);
  }
}

export type EvalPoint = { version: number; loss: number; accuracy: number; at: number };

/** Loss (and accuracy on the right axis) against version and against time: the two curves of a job. */
export function evalCharts(container: HTMLElement, name: string): (evals: EvalPoint[]) => void {
  const byVersion = document.createElement('div'), byTime = document.createElement('div');
  byVersion.className = byTime.className = 'chart';
  container.append(byVersion, byTime);
  const series: Series[] = [{ label: 'held-out loss', stroke: '#2f6f4f' }, { label: 'accuracy', stroke: '#c0762c', scale: 'right' }];
  const v = new LineChart(byVersion, { title: `${name}: loss vs version`, x: 'version', series });
  const t = new LineChart(byTime, { title: `${name}: loss vs time`, x: 'time', series });
  return (evals) => {
    if (evals.length === 0) return;
    const sorted = [...evals].sort((a, b) => a.version - b.version);
    v.set([sorted.map((e) => e.version), sorted.map((e) => e.loss), sorted.map((e) => e.accuracy)]);
    const timed = [...evals].sort((a, b) => a.at - b.at);
    t.set([timed.map((e) => e.at / 1000), timed.map((e) => e.loss), timed.map((e) => e.accuracy)]);
  };
}
