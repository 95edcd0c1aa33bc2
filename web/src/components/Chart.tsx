// A small SVG line chart: one or more series over epochs, points marked, attempt boundaries (a retry, a
// resume from a checkpoint) drawn as labelled dashed lines. No chart library: this is all a curve needs.

import { useEffect, useId, useRef, useState, type RefObject } from "react";
import { number } from "../format";

export interface ChartPoint {
  x: number;
  y: number;
  title?: string;
}

export interface ChartSeries {
  label: string;
  color: string;
  points: ChartPoint[];
}

export interface ChartMark {
  x: number;
  label: string;
}

interface Props {
  title: string;
  series: ChartSeries[];
  marks?: ChartMark[];
  /** The x axis runs at least to here (a job's epochs), so a curve grows across it. */
  xMax?: number | null;
  xLabel?: string;
}

const H = 220;
const M = { left: 56, right: 14, top: 18, bottom: 34 };

export const PALETTE = ["#0a58ca", "#c2410c", "#15803d", "#7c3aed", "#be185d", "#0e7490", "#a16207", "#475569"];

function niceTicks(lo: number, hi: number, count = 4): number[] {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * power).find((s) => span / s <= count + 0.5) ?? raw;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

/** The element's width in CSS pixels, so the chart draws at its real size (text stays legible). */
function useWidth(fallback: number): [RefObject<HTMLElement | null>, number] {
  const ref = useRef<HTMLElement>(null);
  const [width, setWidth] = useState(fallback);
  useEffect(() => {
    const el = ref.current;
    if (!el || typeof ResizeObserver === "undefined") return;
    const observer = new ResizeObserver(([entry]) => {
      const next = Math.round(entry?.contentRect.width ?? 0);
      if (next > 0) setWidth(next);
    });
    observer.observe(el);
    return () => observer.disconnect();
  }, []);
  return [ref, width];
}

export function Chart({ title, series, marks = [], xMax, xLabel = "epoch" }: Props) {
  const titleId = useId();
  const [box, W] = useWidth(560);
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p.x);
  const ys = all.map((p) => p.y).filter(Number.isFinite);
  const x0 = Math.min(1, ...xs);
  const x1 = Math.max(x0 + 1, xMax ?? 0, ...xs);
  let y0 = ys.length ? Math.min(...ys) : 0;
  let y1 = ys.length ? Math.max(...ys) : 1;
  if (y1 - y0 < 1e-12) {
    const pad = Math.abs(y0) * 0.1 || 1;
    y0 -= pad;
    y1 += pad;
  } else {
    const pad = (y1 - y0) * 0.08;
    y0 -= pad;
    y1 += pad;
  }
  const px = (x: number) => M.left + ((x - x0) / (x1 - x0)) * (W - M.left - M.right);
  const py = (y: number) => H - M.bottom - ((y - y0) / (y1 - y0)) * (H - M.top - M.bottom);
  const xTicks = niceTicks(x0, x1, 6).filter((t) => Number.isInteger(t));
  const yTicks = niceTicks(y0, y1, 4);
  const latest = series.map((s) => {
    const p = s.points[s.points.length - 1];
    return p ? `${s.label} ${number(p.y)} at ${xLabel} ${p.x}` : `${s.label}: no points yet`;
  });

  return (
    <figure className="chart" ref={box}>
      <figcaption id={titleId}>{title}</figcaption>
      <svg
        viewBox={`0 0 ${W} ${H}`}
        role="img"
        aria-labelledby={titleId}
        aria-description={latest.join("; ")}
        data-metric={title}
        data-points={all.length}
      >
        <rect x={M.left} y={M.top} width={W - M.left - M.right} height={H - M.top - M.bottom} className="plot" />
        {yTicks.map((t) => (
          <g key={`y${t}`}>
            <line x1={M.left} x2={W - M.right} y1={py(t)} y2={py(t)} className="grid" />
            <text x={M.left - 6} y={py(t)} className="tick" textAnchor="end" dominantBaseline="middle">
              {number(t)}
            </text>
          </g>
        ))}
        {xTicks.map((t) => (
          <text key={`x${t}`} x={px(t)} y={H - M.bottom + 16} className="tick" textAnchor="middle">
            {t}
          </text>
        ))}
        <text x={(M.left + W - M.right) / 2} y={H - 4} className="axis-label" textAnchor="middle">
          {xLabel}
        </text>
        {marks.map((mark) => (
          <g key={`m${mark.x}${mark.label}`} className="mark">
            <line x1={px(mark.x)} x2={px(mark.x)} y1={M.top} y2={H - M.bottom} />
            <text x={px(mark.x) + 4} y={M.top + 11} className="mark-label">
              {mark.label}
            </text>
          </g>
        ))}
        {series.map((s) => (
          <g key={s.label} data-series={s.label}>
            {s.points.length > 1 && (
              <polyline
                fill="none"
                stroke={s.color}
                strokeWidth={2}
                points={s.points.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(" ")}
              />
            )}
            {s.points.map((p) => (
              <circle key={p.x} className="pt" cx={px(p.x)} cy={py(p.y)} r={3.5} fill={s.color}>
                <title>{p.title ?? `${s.label}: ${number(p.y)} at ${xLabel} ${p.x}`}</title>
              </circle>
            ))}
          </g>
        ))}
      </svg>
      {series.length > 1 && (
        <ul className="legend">
          {series.map((s) => (
            <li key={s.label}>
              <span className="swatch" style={{ background: s.color }} aria-hidden="true" />
              {s.label}
            </li>
          ))}
        </ul>
      )}
    </figure>
  );
}
