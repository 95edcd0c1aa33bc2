// A job's page: state, attempt, pool and timings; progress; a chart per metric from the metrics history,
// growing with each job.progress, attempts marked; artifacts; the log tail; the event timeline; cancel and
// "train again with these settings".

import { useCallback, useMemo, useState } from "react";
import { api, ApiError, pendingOf, TERMINAL, type Job, type JobEvent } from "../api";
import { dateTime, duration, number, shortId, since } from "../format";
import { useNow, useResource, useTitle } from "../hooks";
import { useJobEvents } from "../live";
import { Link } from "../router";
import { Chart } from "../components/Chart";
import { ErrorBox, Loading, ProgressBar, StateBadge, StreamBadge } from "../components/States";
import { Artifacts } from "../components/Artifacts";
import { LogTail } from "../components/LogTail";
import { Timeline } from "../components/Timeline";
import { attemptMarks, NO_CURVES, points, withHistory, withProgress, type Curves } from "../curves";

export function JobPage({ id }: { id: string }) {
  const job = useResource((signal) => api.job(id, signal), [id]);
  const [curves, setCurves] = useState<Curves>(NO_CURVES);
  const [events, setEvents] = useState<Record<number, JobEvent>>({});
  const [artifactsVersion, setArtifactsVersion] = useState(0);
  useTitle(job.data?.name ?? `Job ${shortId(id)}`);

  const history = useResource(
    async (signal) => {
      const result = await api.metrics(id, signal);
      setCurves((c) => withHistory(c, result));
      return result;
    },
    [id],
  );

  const onEvent = useCallback(
    (event: JobEvent) => {
      const pending = pendingOf(event);
      if (pending) {
        job.set((current) => (current && !TERMINAL.has(current.state) ? { ...current, ...pending } : current));
        return;
      }
      setEvents((all) => (all[event.version] ? all : { ...all, [event.version]: event }));
      if (event.type === "job.progress") setCurves((c) => withProgress(c, event));
      if (event.type === "job.artifact" || TERMINAL.has(event.state)) setArtifactsVersion((v) => v + 1);
      job.set((current) => (current ? applyEvent(current, event) : current));
      // The terminal event arrives once the API's read model holds it: read the whole job again.
      if (TERMINAL.has(event.state)) job.reload();
    },
    [job.set, job.reload],
  );
  const stream = useJobEvents(job.data ? `/v1/jobs/${encodeURIComponent(id)}/events?pending=true` : null, onEvent, true);
  const ordered = useMemo(() => Object.values(events).sort((a, b) => a.version - b.version), [events]);

  if (job.error && !job.data) return <ErrorBox error={job.error} retry={job.reload} />;
  if (!job.data) return <Loading what="the job" />;
  const data = job.data;
  const finished = TERMINAL.has(data.state);

  return (
    <article className="job" data-job={data.id}>
      <div className="title-row">
        <h1>
          {data.name ?? "Job"} <span className="mono muted small">{data.id}</span>
        </h1>
        <StreamBadge state={stream} label="Events" />
      </div>
      <Summary job={data} events={ordered} curves={curves} />
      <section aria-labelledby="charts-title">
        <h2 id="charts-title">Metrics</h2>
        {history.error && <ErrorBox error={history.error} retry={history.reload} />}
        {history.loading && !Object.keys(curves.series).length && <Loading what="the metrics" />}
        <Charts curves={curves} state={data.state} />
      </section>
      {data.final_metrics && <FinalMetrics metrics={data.final_metrics} />}
      <Settings job={data} />
      <Artifacts jobId={data.id} version={artifactsVersion} />
      <LogTail jobId={data.id} finished={finished} events={ordered} />
      <Timeline events={ordered} />
    </article>
  );
}

function applyEvent(job: Job, event: JobEvent): Job {
  if (event.version <= job.version) return job;
  const next: Job = { ...job, state: event.state, attempt: event.attempt, version: event.version, updated_at: event.time };
  const payload = event.payload;
  if (event.state !== "QUEUED" && event.state !== "PENDING") {
    next.queue_position = null;
    next.pending_reason = null;
  }
  if (typeof payload.reason === "string") next.reason = payload.reason;
  if (event.type === "job.progress" && payload.metrics && typeof payload.metrics === "object") next.metrics = payload.metrics as Job["metrics"];
  return next;
}

function Summary({ job, events, curves }: { job: Job; events: JobEvent[]; curves: Curves }) {
  const finished = TERMINAL.has(job.state);
  useNow(1000, !finished);
  const started = events.find((e) => e.type === "job.running")?.time ?? null;
  const lastStart = [...events].reverse().find((e) => e.type === "job.running")?.time ?? null;
  const ended = finished ? (events.find((e) => TERMINAL.has(e.state))?.time ?? job.updated_at) : null;
  const waiting = job.state === "QUEUED" || job.state === "PENDING";
  const epochs = curves.epochs ?? (typeof job.hyperparameters.epochs === "number" ? job.hyperparameters.epochs : null);
  const epoch = job.state === "SUCCEEDED" && epochs ? epochs : (curves.current?.epoch ?? 0);
  const [cancel, setCancel] = useState<"idle" | "confirm" | "sending" | "sent">("idle");
  const [cancelError, setCancelError] = useState<string | null>(null);

  async function sendCancel() {
    setCancel("sending");
    setCancelError(null);
    try {
      await api.cancel(job.id);
      setCancel("sent");
    } catch (exc) {
      setCancel("idle");
      setCancelError(exc instanceof ApiError && exc.status === 409 ? "The job has already ended." : String((exc as Error).message));
    }
  }

  return (
    <section className="summary" aria-label="Summary">
      <dl className="facts">
        <div>
          <dt>State</dt>
          <dd>
            <StateBadge state={job.state} />
          </dd>
        </div>
        <div>
          <dt>Attempt</dt>
          <dd data-testid="attempt">
            {job.attempt} of {job.max_attempts}
          </dd>
        </div>
        <div>
          <dt>Pool</dt>
          <dd>{job.pool}</dd>
        </div>
        <div>
          <dt>Model</dt>
          <dd>
            {job.framework} · {job.task} · {job.model}
          </dd>
        </div>
        <div>
          <dt>Dataset</dt>
          <dd>
            <Link href={`/datasets/${encodeURIComponent(job.dataset)}`}>{shortId(job.dataset)}</Link>
            {job.dataset_version != null && ` (version ${job.dataset_version})`}
          </dd>
        </div>
        <div>
          <dt>Submitted</dt>
          <dd>{dateTime(job.created_at)}</dd>
        </div>
        <div>
          <dt>Waited</dt>
          <dd>{started ? duration(since(job.created_at, started)) : waiting ? `${duration(since(job.created_at))} so far` : "–"}</dd>
        </div>
        <div>
          <dt>{finished ? "Ran" : "Running for"}</dt>
          <dd>{lastStart ? duration(since(started ?? lastStart, ended)) : "–"}</dd>
        </div>
        {ended && (
          <div>
            <dt>Ended</dt>
            <dd>{dateTime(ended)}</dd>
          </div>
        )}
      </dl>
      {waiting && (job.queue_position != null || job.pending_reason) && (
        <p className="notice" data-testid="pending">
          {job.queue_position != null && <strong>Position {job.queue_position} in the queue of pool {job.pool}. </strong>}
          {job.pending_reason}
        </p>
      )}
      {job.reason && job.state !== "SUCCEEDED" && (
        <p className={job.state === "FAILED" ? "error" : "notice"} data-testid="reason">
          {job.reason}
        </p>
      )}
      <ProgressBar
        value={epoch}
        max={epochs ?? 0}
        label={
          waiting && !epoch
            ? `waiting to start${epochs ? ` (${epochs} epochs)` : ""}`
            : epochs
              ? `epoch ${epoch} of ${epochs}`
              : job.state === "RUNNING"
                ? "starting…"
                : job.state.toLowerCase()
        }
      />
      <div className="actions">
        {!finished && cancel === "idle" && (
          <button type="button" className="danger" onClick={() => setCancel("confirm")}>
            Cancel job
          </button>
        )}
        {!finished && cancel === "confirm" && (
          <span className="confirm" role="group" aria-label="Confirm cancellation">
            Stop this job?{" "}
            <button type="button" className="danger" autoFocus onClick={sendCancel}>
              Yes, cancel it
            </button>
            <button type="button" className="secondary" onClick={() => setCancel("idle")}>
              Keep it running
            </button>
          </span>
        )}
        {!finished && cancel === "sending" && <span className="muted">Cancelling…</span>}
        {!finished && cancel === "sent" && (
          <span className="muted" role="status">
            Cancellation requested.
          </span>
        )}
        <Link className="button secondary" href={`/submit?from=${encodeURIComponent(job.id)}`}>
          Train again with these settings
        </Link>
        {cancelError && (
          <span className="field-error" role="alert">
            {cancelError}
          </span>
        )}
      </div>
    </section>
  );
}

function Charts({ curves, state }: { curves: Curves; state: string }) {
  const names = Object.keys(curves.series);
  if (!names.length)
    return (
      <p className="empty">
        {TERMINAL.has(state) ? "This job reported no metrics." : "The first chart appears when the first epoch ends."}
      </p>
    );
  const marks = attemptMarks(curves);
  return (
    <div className="charts">
      {names.map((name) => (
        <Chart key={name} title={name} series={[{ label: name, color: "#0a58ca", points: points(curves, name) }]} marks={marks} xMax={curves.epochs} />
      ))}
    </div>
  );
}

function FinalMetrics({ metrics }: { metrics: Record<string, unknown> }) {
  return (
    <section aria-labelledby="final-title">
      <h2 id="final-title">Final metrics</h2>
      <dl className="facts compact">
        {Object.entries(metrics).map(([name, value]) => (
          <div key={name}>
            <dt>{name}</dt>
            <dd className="mono">{number(value)}</dd>
          </div>
        ))}
      </dl>
    </section>
  );
}

function Settings({ job }: { job: Job }) {
  const rows: [string, unknown][] = [
    ...Object.entries(job.hyperparameters),
    ["weights", job.weights ?? null],
    ["export", job.export?.join(", ") || null],
  ];
  return (
    <section aria-labelledby="settings-title">
      <h2 id="settings-title">Settings</h2>
      <dl className="facts compact">
        {rows.map(([name, value]) => (
          <div key={name}>
            <dt>{name}</dt>
            <dd className="mono">{number(value)}</dd>
          </div>
        ))}
        <div>
          <dt>trace id</dt>
          <dd className="mono small">{job.trace_id}</dd>
        </div>
      </dl>
    </section>
  );
}
