// A job's curves: the metrics history (`GET /v1/jobs/{id}/metrics`) merged with each `job.progress` as it
// comes. An epoch appears once, as the latest attempt that trained it reported it, exactly as the API's
// history has it, so replayed and live events may arrive in any overlap.

import type { AttemptMark, JobEvent, MetricPoint, MetricsHistory } from "./api";
import type { ChartMark, ChartPoint } from "./components/Chart";

export interface Curves {
  epochs: number | null;
  series: Record<string, Record<number, MetricPoint>>;
  attempts: Record<number, AttemptMark>;
  /** The latest epoch reported, by the latest attempt (a retry from scratch starts over at 1). */
  current: { epoch: number; attempt: number } | null;
}

export const NO_CURVES: Curves = { epochs: null, series: {}, attempts: {}, current: null };

function put(series: Curves["series"], name: string, point: MetricPoint): Curves["series"] {
  const existing = series[name]?.[point.epoch];
  if (existing && existing.attempt > point.attempt) return series;
  return { ...series, [name]: { ...series[name], [point.epoch]: point } };
}

export function withHistory(curves: Curves, history: MetricsHistory): Curves {
  let series = curves.series;
  for (const [name, points] of Object.entries(history.series)) for (const point of points) series = put(series, name, point);
  const attempts = { ...curves.attempts };
  for (const mark of history.attempts) attempts[mark.attempt] ??= mark;
  let current = curves.current;
  for (const points of Object.values(history.series))
    for (const p of points)
      if (!current || p.attempt > current.attempt || (p.attempt === current.attempt && p.epoch > current.epoch))
        current = { epoch: p.epoch, attempt: p.attempt };
  return { epochs: curves.epochs ?? history.epochs, series, attempts, current };
}

export function withProgress(curves: Curves, event: JobEvent): Curves {
  const { epoch, epochs, metrics, resumed_from_epoch: resumed } = event.payload;
  if (typeof epoch !== "number") return curves;
  let series = curves.series;
  if (metrics && typeof metrics === "object" && !Array.isArray(metrics)) {
    for (const [name, value] of Object.entries(metrics)) {
      if (typeof value !== "number" || !Number.isFinite(value)) continue;
      series = put(series, name, { epoch, value, attempt: event.attempt, time: event.time });
    }
  }
  const attempts = curves.attempts[event.attempt]
    ? curves.attempts
    : {
        ...curves.attempts,
        [event.attempt]: {
          attempt: event.attempt,
          first_epoch: epoch,
          resumed_from_epoch: typeof resumed === "number" ? resumed : null,
        },
      };
  const before = curves.current;
  const current =
    !before || event.attempt > before.attempt || (event.attempt === before.attempt && epoch >= before.epoch)
      ? { epoch, attempt: event.attempt }
      : before;
  return { epochs: typeof epochs === "number" ? epochs : curves.epochs, series, attempts, current };
}

export function points(curves: Curves, name: string): ChartPoint[] {
  return Object.values(curves.series[name] ?? {})
    .sort((a, b) => a.epoch - b.epoch)
    .map((p) => ({ x: p.epoch, y: p.value, title: `${name} ${p.value} at epoch ${p.epoch} (attempt ${p.attempt})` }));
}

/** Where a later attempt took over: a retry from scratch, or a resume from a checkpoint. */
export function attemptMarks(curves: Curves): ChartMark[] {
  return Object.values(curves.attempts)
    .filter((mark) => mark.attempt > 1 || mark.resumed_from_epoch != null)
    .map((mark) => ({
      x: mark.first_epoch,
      label: mark.resumed_from_epoch != null ? `attempt ${mark.attempt}: resumed after epoch ${mark.resumed_from_epoch}` : `attempt ${mark.attempt}: retry`,
    }));
}
