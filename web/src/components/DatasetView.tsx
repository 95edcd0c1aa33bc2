// One dataset version: its status, a READY one's summary, a REJECTED one's problems, a FAILED one's
// reason; while VALIDATING, its validation job followed live.

import { useCallback, useEffect, useState } from "react";
import { api, TERMINAL, type Dataset, type JobEvent } from "../api";
import { bytes, dateTime } from "../format";
import { useInterval } from "../hooks";
import { useJobEvents } from "../live";
import { Link } from "../router";
import { StateBadge, StreamBadge } from "./States";

/** The dataset, read again until its validation has ended; with the validation's latest news. */
export function useValidated(initial: Dataset): { dataset: Dataset; note: string | null } {
  const [dataset, setDataset] = useState(initial);
  const [note, setNote] = useState<string | null>(null);
  useEffect(() => setDataset(initial), [initial]);
  const validating = dataset.status === "VALIDATING";
  const refresh = useCallback(() => {
    api.dataset(dataset.id).then(setDataset, () => undefined);
  }, [dataset.id]);
  const onEvent = useCallback(
    (event: JobEvent) => {
      if (event.type === "job.log" && typeof event.payload.message === "string") setNote(event.payload.message);
      else if (event.type === "job.running") setNote("validation is running");
      else if (event.type === "job.queued") setNote("validation is queued");
      if (TERMINAL.has(event.state)) refresh();
    },
    [refresh],
  );
  useJobEvents(validating && dataset.validation_job_id ? `/v1/jobs/${encodeURIComponent(dataset.validation_job_id)}/events` : null, onEvent, true);
  // The dataset's status is written from the validation's end; poll too, in case that lands after the event.
  useInterval(refresh, 2000, validating);
  return { dataset, note };
}

export function DatasetView({ dataset, note }: { dataset: Dataset; note?: string | null }) {
  return (
    <div className="dataset" data-dataset={dataset.id} data-status={dataset.status}>
      <div className="title-row">
        <h2>
          {dataset.name}:{dataset.version} <StateBadge state={dataset.status} />
        </h2>
        {dataset.status === "VALIDATING" && <StreamBadge state={{ status: "live" }} label="Validation" />}
      </div>
      <dl className="facts compact">
        <div>
          <dt>Format</dt>
          <dd>{dataset.format}</dd>
        </div>
        <div>
          <dt>Archive</dt>
          <dd>
            {dataset.filename} ({bytes(dataset.size)})
          </dd>
        </div>
        <div>
          <dt>Uploaded</dt>
          <dd>{dateTime(dataset.created_at)}</dd>
        </div>
        <div>
          <dt>Id</dt>
          <dd className="mono small">{dataset.id}</dd>
        </div>
        {dataset.content_hash && (
          <div>
            <dt>Content hash</dt>
            <dd className="mono small clip" title={dataset.content_hash}>
              {dataset.content_hash.slice(0, 23)}…
            </dd>
          </div>
        )}
        {dataset.validation_job_id && (
          <div>
            <dt>Validation job</dt>
            <dd>
              <Link href={`/jobs/${encodeURIComponent(dataset.validation_job_id)}`}>{dataset.validation_job_id.slice(0, 8)}</Link>
            </dd>
          </div>
        )}
      </dl>
      {dataset.status === "VALIDATING" && (
        <p className="notice" role="status">
          <span className="spinner" aria-hidden="true" /> Validating… {note}
        </p>
      )}
      {dataset.status === "READY" && dataset.summary && <Summary dataset={dataset} />}
      {dataset.status === "REJECTED" && <Problems dataset={dataset} />}
      {dataset.status === "FAILED" && (
        <p className="error" role="alert">
          The validation could not run: {dataset.reason ?? "no reason given"}. Upload the archive again.
        </p>
      )}
      {dataset.status === "READY" && (
        <p>
          <Link className="button" href={`/submit?dataset=${encodeURIComponent(dataset.id)}`}>
            Train on this dataset
          </Link>
        </p>
      )}
    </div>
  );
}

function Summary({ dataset }: { dataset: Dataset }) {
  const summary = dataset.summary!;
  const classes = Array.isArray(summary.classes) ? summary.classes : null;
  const splits = Object.entries(summary.splits ?? {});
  const perClass = (split: (typeof splits)[number][1]) => split.instances ?? split.images_per_class ?? {};
  return (
    <section className="ready" aria-label="Summary" data-testid="dataset-summary">
      <p>
        <strong>Ready.</strong> {classes ? classes.length : String(summary.classes ?? "?")} classes
        {classes && `: ${classes.join(", ")}`}; {summary.files ?? "?"} files, {bytes(summary.total_bytes)}
        {summary.other_files ? `; ${summary.other_files} other files not read` : ""}.
      </p>
      {splits.length > 0 && (
        <table className="responsive">
          <thead>
            <tr>
              <th scope="col">Split</th>
              <th scope="col">Images</th>
              {dataset.format !== "imagefolder" && <th scope="col">Labels</th>}
              {dataset.format !== "imagefolder" && <th scope="col">Background</th>}
              <th scope="col">{dataset.format === "imagefolder" ? "Images per class" : "Instances per class"}</th>
            </tr>
          </thead>
          <tbody>
            {splits.map(([name, split]) => (
              <tr key={name}>
                <th scope="row" data-label="Split">
                  {name}
                </th>
                <td data-label="Images">{split.images ?? "–"}</td>
                {dataset.format !== "imagefolder" && <td data-label="Labels">{split.labels ?? "–"}</td>}
                {dataset.format !== "imagefolder" && <td data-label="Background">{split.background_images ?? "–"}</td>}
                <td data-label="Per class" className="small">
                  {Object.entries(perClass(split))
                    .map(([k, v]) => `${k} ${v}`)
                    .join(", ") || "–"}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function Problems({ dataset }: { dataset: Dataset }) {
  return (
    <section aria-label="Problems" data-testid="dataset-problems">
      <p className="error" role="alert">
        <strong>Rejected:</strong> {dataset.problem_count} problem{dataset.problem_count === 1 ? "" : "s"}
        {dataset.problem_count > dataset.problems.length ? ` (the first ${dataset.problems.length} shown)` : ""}.
      </p>
      <table className="responsive problems">
        <thead>
          <tr>
            <th scope="col">File</th>
            <th scope="col">Line</th>
            <th scope="col">Problem</th>
          </tr>
        </thead>
        <tbody>
          {dataset.problems.map((problem, i) => (
            <tr key={i}>
              <td data-label="File" className="mono">
                {problem.file ?? "(the archive)"}
              </td>
              <td data-label="Line">{problem.line ?? "–"}</td>
              <td data-label="Problem">{problem.message}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
