// Compare runs: two or more jobs' curves overlaid, their settings and final metrics side by side.

import { useState } from "react";
import { api, TERMINAL, type Job, type MetricsHistory } from "../api";
import { number, shortId, time } from "../format";
import { useInterval, useResource, useTitle } from "../hooks";
import { Link, navigate } from "../router";
import { Chart, PALETTE } from "../components/Chart";
import { Empty, ErrorBox, Loading, StateBadge } from "../components/States";

interface Run {
  job: Job;
  metrics: MetricsHistory;
}

const label = (job: Job) => job.name ?? shortId(job.id);

export function ComparePage({ query }: { query: URLSearchParams }) {
  useTitle("Compare runs");
  const ids = (query.get("ids") ?? "").split(",").filter(Boolean);
  const key = ids.join(",");
  const runs = useResource<Run[]>(
    (signal) => Promise.all(ids.map(async (id) => ({ job: await api.job(id, signal), metrics: await api.metrics(id, signal) }))),
    [key],
  );
  const running = (runs.data ?? []).some((run) => !TERMINAL.has(run.job.state));
  useInterval(runs.reload, 3000, running);

  return (
    <section>
      <h1>Compare runs</h1>
      <Picker ids={ids} />
      {ids.length < 2 && <Empty>Pick two or more jobs to compare.</Empty>}
      {ids.length >= 2 && runs.loading && !runs.data && <Loading what="the runs" />}
      {runs.error && <ErrorBox error={runs.error} retry={runs.reload} />}
      {ids.length >= 2 && runs.data && <Comparison runs={runs.data} />}
    </section>
  );
}

function Picker({ ids }: { ids: string[] }) {
  const recent = useResource((signal) => api.jobs(new URLSearchParams({ limit: "50" }), signal), []);
  const [open, setOpen] = useState(ids.length < 2);
  const toggle = (id: string) => {
    const next = ids.includes(id) ? ids.filter((x) => x !== id) : [...ids, id];
    navigate(next.length ? `/compare?ids=${next.map(encodeURIComponent).join(",")}` : "/compare", true);
  };
  return (
    <details className="picker" open={open} onToggle={(e) => setOpen(e.currentTarget.open)}>
      <summary>Choose jobs ({ids.length} chosen)</summary>
      {recent.loading && <Loading what="recent jobs" />}
      {recent.error && <ErrorBox error={recent.error} retry={recent.reload} />}
      {recent.data && recent.data.items.length === 0 && <Empty>No jobs yet.</Empty>}
      <ul className="choices">
        {(recent.data?.items ?? []).map((job) => (
          <li key={job.id}>
            <label>
              <input type="checkbox" checked={ids.includes(job.id)} onChange={() => toggle(job.id)} />
              {label(job)} <StateBadge state={job.state} /> <span className="muted small">{job.model} · {time(job.created_at)}</span>
            </label>
          </li>
        ))}
      </ul>
    </details>
  );
}

function differs(values: unknown[]): boolean {
  return new Set(values.map((v) => JSON.stringify(v ?? null))).size > 1;
}

function Comparison({ runs }: { runs: Run[] }) {
  const names = [...new Set(runs.flatMap((run) => Object.keys(run.metrics.series)))];
  const hyper = [...new Set(runs.flatMap((run) => Object.keys(run.job.hyperparameters)))].sort();
  const finals = [...new Set(runs.flatMap((run) => Object.keys(run.job.final_metrics ?? run.job.metrics ?? {})))].sort();
  const epochs = Math.max(0, ...runs.map((run) => run.metrics.epochs ?? 0));
  const settings: [string, (job: Job) => unknown][] = [
    ["framework", (job) => job.framework],
    ["task", (job) => job.task],
    ["model", (job) => job.model],
    ["dataset", (job) => `${shortId(job.dataset)}${job.dataset_version != null ? ` v${job.dataset_version}` : ""}`],
    ["pool", (job) => job.pool],
    ["weights", (job) => job.weights ?? null],
    ...hyper.map((name): [string, (job: Job) => unknown] => [name, (job) => job.hyperparameters[name]]),
  ];

  return (
    <>
      <h2>Curves</h2>
      {names.length === 0 ? (
        <Empty>None of these jobs has reported metrics yet.</Empty>
      ) : (
        <div className="charts">
          {names.map((name) => (
            <Chart
              key={name}
              title={name}
              xMax={epochs}
              series={runs.map((run, i) => ({
                label: label(run.job),
                color: PALETTE[i % PALETTE.length]!,
                points: (run.metrics.series[name] ?? []).map((p) => ({ x: p.epoch, y: p.value })),
              }))}
            />
          ))}
        </div>
      )}
      <h2>Side by side</h2>
      <div className="scroll">
        <table className="compare">
          <thead>
            <tr>
              <th scope="col">
                <span className="sr-only">Setting</span>
              </th>
              {runs.map((run, i) => (
                <th scope="col" key={run.job.id}>
                  <span className="swatch" style={{ background: PALETTE[i % PALETTE.length] }} aria-hidden="true" />
                  <Link href={`/jobs/${encodeURIComponent(run.job.id)}`}>{label(run.job)}</Link> <StateBadge state={run.job.state} />
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            <tr className="group">
              <th scope="rowgroup" colSpan={runs.length + 1}>
                Settings
              </th>
            </tr>
            {settings.map(([name, get]) => {
              const values = runs.map((run) => get(run.job));
              return (
                <tr key={`s-${name}`} className={differs(values) ? "differs" : undefined} data-row={name}>
                  <th scope="row">
                    {name}
                    {differs(values) && <span className="sr-only"> (differs)</span>}
                  </th>
                  {values.map((value, i) => (
                    <td key={i} className="mono">
                      {number(value)}
                    </td>
                  ))}
                </tr>
              );
            })}
            <tr className="group">
              <th scope="rowgroup" colSpan={runs.length + 1}>
                Final metrics
              </th>
            </tr>
            {finals.map((name) => {
              const values = runs.map((run) => (run.job.final_metrics ?? run.job.metrics ?? {})[name]);
              return (
                <tr key={`f-${name}`} data-row={`final:${name}`}>
                  <th scope="row">{name}</th>
                  {values.map((value, i) => (
                    <td key={i} className="mono">
                      {number(value)}
                    </td>
                  ))}
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </>
  );
}
