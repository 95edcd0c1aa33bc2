// The jobs list: filters (state, framework, pool) and paging in the URL, states kept live from the project's
// event stream, a waiting job's queue position and reason, and a selection to compare.

import { useCallback, useRef, useState } from "react";
import { api, JOB_STATES, pendingOf, type Job, type JobEvent, type JobPage } from "../api";
import { shortId, time } from "../format";
import { useInterval, useResource, useTitle } from "../hooks";
import { useJobEvents } from "../live";
import { Link, navigate } from "../router";
import { Empty, ErrorBox, Loading, StateBadge, StreamBadge } from "../components/States";

const PAGE_SIZE = 20;
const FRAMEWORKS = ["timm", "ultralytics", "validation"];

interface Progress {
  epoch: number;
  epochs: number | null;
}

export function JobsPage({ query }: { query: URLSearchParams }) {
  useTitle("Jobs");
  const state = query.get("state") ?? "";
  const framework = query.get("framework") ?? "";
  const pool = query.get("pool") ?? "";
  const cursor = query.get("cursor") ?? "";
  const [selected, setSelected] = useState<string[]>([]);
  const [progress, setProgress] = useState<Record<string, Progress>>({});
  const [previous, setPrevious] = useState<string[]>([]);
  const refetch = useRef<ReturnType<typeof setTimeout>>(undefined);
  const shown = useRef(new Set<string>());

  const page = useResource<JobPage>(
    (signal) => {
      const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
      if (state) params.set("state", state);
      if (framework) params.set("framework", framework);
      if (pool) params.set("pool", pool);
      if (cursor) params.set("cursor", cursor);
      return api.jobs(params, signal);
    },
    [state, framework, pool, cursor],
  );
  const pools = useResource((signal) => api.pools(signal), []);
  // A waiting job's place in its queue moves as other projects' jobs go: the project's stream does not say
  // so, so the page is read again while one waits.
  const waiting = (page.data?.items ?? []).some((job) => job.state === "QUEUED" || job.state === "PENDING");
  useInterval(page.reload, 5000, waiting);
  shown.current = new Set((page.data?.items ?? []).map((job) => job.id));

  const onEvent = useCallback(
    (event: JobEvent) => {
      if (event.type === "job.progress" && typeof event.payload.epoch === "number") {
        const epochs = typeof event.payload.epochs === "number" ? event.payload.epochs : null;
        setProgress((all) => ({ ...all, [event.job_id]: { epoch: event.payload.epoch as number, epochs } }));
      }
      const pending = pendingOf(event);
      if (pending) {
        page.set((current) =>
          current && { ...current, items: current.items.map((job) => (job.id === event.job_id ? { ...job, ...pending } : job)) },
        );
        return;
      }
      page.set((current) => {
        if (!current) return current;
        const items = current.items.map((job) => {
          if (job.id !== event.job_id) return job;
          if (event.version <= job.version) return job;
          const next: Job = { ...job, state: event.state, attempt: event.attempt, version: event.version, updated_at: event.time };
          if (event.state !== "QUEUED" && event.state !== "PENDING") {
            next.queue_position = null;
            next.pending_reason = null;
          }
          if (typeof event.payload.reason === "string") next.reason = event.payload.reason;
          return next;
        });
        return { ...current, items };
      });
      // A job this page does not show yet (a new one, on the first page): read the page again, once a burst
      // of events is over.
      if (!shown.current.has(event.job_id) && !cursor && event.type === "job.submitted") {
        clearTimeout(refetch.current);
        refetch.current = setTimeout(page.reload, 400);
      }
    },
    [page.set, page.reload, cursor],
  );
  const stream = useJobEvents("/v1/events", onEvent, false);

  function setFilter(name: string, value: string) {
    const next = new URLSearchParams(query);
    if (value) next.set(name, value);
    else next.delete(name);
    next.delete("cursor");
    setPrevious([]);
    navigate(`/?${next}`, true);
  }

  function goto(nextCursor: string | null, back = false) {
    const next = new URLSearchParams(query);
    if (back) {
      const stack = [...previous];
      const target = stack.pop() ?? "";
      setPrevious(stack);
      if (target) next.set("cursor", target);
      else next.delete("cursor");
    } else if (nextCursor) {
      setPrevious([...previous, cursor]);
      next.set("cursor", nextCursor);
    }
    navigate(`/?${next}`);
  }

  const toggle = (id: string) =>
    setSelected((current) => (current.includes(id) ? current.filter((x) => x !== id) : [...current, id]));
  const items = page.data?.items ?? [];

  return (
    <section>
      <div className="title-row">
        <h1>Jobs</h1>
        <StreamBadge state={stream} label="Live states" />
      </div>
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter jobs">
        <label>
          State
          <select value={state} onChange={(e) => setFilter("state", e.target.value)}>
            <option value="">any</option>
            {JOB_STATES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Framework
          <select value={framework} onChange={(e) => setFilter("framework", e.target.value)}>
            <option value="">timm and Ultralytics</option>
            {FRAMEWORKS.map((f) => (
              <option key={f}>{f}</option>
            ))}
          </select>
        </label>
        <label>
          Pool
          <select value={pool} onChange={(e) => setFilter("pool", e.target.value)}>
            <option value="">any</option>
            {(pools.data?.items ?? []).map((p) => (
              <option key={p.name}>{p.name}</option>
            ))}
            {pool && !(pools.data?.items ?? []).some((p) => p.name === pool) && <option>{pool}</option>}
          </select>
        </label>
        <button
          type="button"
          disabled={selected.length < 2}
          onClick={() => navigate(`/compare?ids=${selected.map(encodeURIComponent).join(",")}`)}
        >
          Compare selected ({selected.length})
        </button>
      </form>
      {page.loading && !page.data && <Loading what="jobs" />}
      {page.error && <ErrorBox error={page.error} retry={page.reload} />}
      {page.data && items.length === 0 && (
        <Empty>
          {state || framework || pool ? "No job matches these filters." : "No jobs yet."}{" "}
          <Link href="/submit">Submit a job</Link>.
        </Empty>
      )}
      {items.length > 0 && (
        <table className="jobs responsive">
          <caption className="sr-only">Jobs, newest first</caption>
          <thead>
            <tr>
              <th scope="col">
                <span className="sr-only">Compare</span>
              </th>
              <th scope="col">Job</th>
              <th scope="col">State</th>
              <th scope="col">Model</th>
              <th scope="col">Pool</th>
              <th scope="col">Attempt</th>
              <th scope="col">Progress</th>
              <th scope="col">Submitted</th>
            </tr>
          </thead>
          <tbody>
            {items.map((job) => (
              <JobRow key={job.id} job={job} progress={progress[job.id]} selected={selected.includes(job.id)} toggle={toggle} />
            ))}
          </tbody>
        </table>
      )}
      <nav className="pager" aria-label="Pages">
        <button type="button" className="secondary" disabled={!cursor} onClick={() => goto(null, true)}>
          ← Newer
        </button>
        <button type="button" className="secondary" disabled={!page.data?.next_cursor} onClick={() => goto(page.data?.next_cursor ?? null)}>
          Older →
        </button>
      </nav>
    </section>
  );
}

function JobRow({ job, progress, selected, toggle }: { job: Job; progress?: Progress; selected: boolean; toggle: (id: string) => void }) {
  const waiting = job.state === "QUEUED" || job.state === "PENDING";
  const epochs = progress?.epochs ?? (typeof job.hyperparameters.epochs === "number" ? job.hyperparameters.epochs : null);
  return (
    <tr data-job={job.id}>
      <td data-label="Compare">
        <input type="checkbox" checked={selected} onChange={() => toggle(job.id)} aria-label={`Select ${job.name ?? job.id} to compare`} />
      </td>
      <td data-label="Job">
        <Link href={`/jobs/${encodeURIComponent(job.id)}`}>{job.name ?? shortId(job.id)}</Link>
        {job.name && <div className="muted small mono">{shortId(job.id)}</div>}
      </td>
      <td data-label="State">
        <StateBadge state={job.state} />
        {waiting && (job.queue_position != null || job.pending_reason) && (
          <div className="small muted waiting">
            {job.queue_position != null && <>#{job.queue_position} in queue. </>}
            {job.pending_reason}
          </div>
        )}
        {job.state === "FAILED" && job.reason && <div className="small muted clip">{job.reason}</div>}
      </td>
      <td data-label="Model">
        {job.framework} · {job.model}
      </td>
      <td data-label="Pool">{job.pool}</td>
      <td data-label="Attempt">
        {job.attempt}/{job.max_attempts}
      </td>
      <td data-label="Progress">{progress ? `epoch ${progress.epoch}${epochs ? `/${epochs}` : ""}` : job.state === "SUCCEEDED" ? "done" : "–"}</td>
      <td data-label="Submitted">{time(job.created_at)}</td>
    </tr>
  );
}
