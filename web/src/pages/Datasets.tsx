// Datasets: upload an archive (progress, then its validation followed), and every name with its versions.

import { useEffect, useRef, useState, type FormEvent } from "react";
import { api, type Dataset } from "../api";
import { bytes, dateTime } from "../format";
import { useInterval, useResource, useTitle } from "../hooks";
import { Link } from "../router";
import { DatasetView, useValidated } from "../components/DatasetView";
import { Empty, ErrorBox, Loading, ProgressBar, StateBadge } from "../components/States";
import { uploadDataset, type UploadStage } from "../upload";

export const FORMATS = ["imagefolder", "yolo-detect", "yolo-segment"];

export function DatasetsPage() {
  useTitle("Datasets");
  const list = useResource((signal) => api.datasets(signal), []);
  const validating = (list.data?.items ?? []).some((d) => d.status === "VALIDATING");
  useInterval(list.reload, 3000, validating);
  const groups = new Map<string, Dataset[]>();
  for (const dataset of list.data?.items ?? []) groups.set(dataset.name, [...(groups.get(dataset.name) ?? []), dataset]);

  return (
    <section>
      <h1>Datasets</h1>
      <Upload onDone={list.reload} />
      <h2>All datasets</h2>
      {list.loading && !list.data && <Loading what="datasets" />}
      {list.error && <ErrorBox error={list.error} retry={list.reload} />}
      {list.data && groups.size === 0 && <Empty>No datasets yet: upload one above.</Empty>}
      {groups.size > 0 && (
        <table className="responsive datasets">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Versions (newest first)</th>
              <th scope="col">Format</th>
              <th scope="col">Latest upload</th>
            </tr>
          </thead>
          <tbody>
            {[...groups].map(([name, versions]) => (
              <tr key={name} data-name={name}>
                <th scope="row" data-label="Name">
                  {name}
                </th>
                <td data-label="Versions">
                  <ul className="versions">
                    {versions.map((d) => (
                      <li key={d.id}>
                        <Link href={`/datasets/${encodeURIComponent(d.id)}`}>v{d.version}</Link> <StateBadge state={d.status} />{" "}
                        <span className="muted small">{bytes(d.size)}</span>
                      </li>
                    ))}
                  </ul>
                </td>
                <td data-label="Format">{versions[0]!.format}</td>
                <td data-label="Latest upload">{dateTime(versions[0]!.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

const STAGES: Record<UploadStage, string> = {
  ticket: "Asking for an upload URL…",
  storage: "Uploading to storage…",
  api: "Uploading through the API…",
  register: "Registering the dataset…",
};

function Upload({ onDone }: { onDone: () => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [name, setName] = useState("");
  const [format, setFormat] = useState("imagefolder");
  const [stage, setStage] = useState<UploadStage | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [sent, setSent] = useState<[number, number]>([0, 0]);
  const [error, setError] = useState<string | null>(null);
  const [result, setResult] = useState<Dataset | null>(null);
  // Which way the archive went: straight to storage (the signed URL) or through the API (the fallback).
  const [through, setThrough] = useState<"storage" | "api" | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);

  function pick(chosen: File | null) {
    setFile(chosen);
    if (chosen && !name) setName(chosen.name.replace(/\.(zip|tar\.gz|tgz)$/i, "").replace(/[^A-Za-z0-9._-]+/g, "-"));
  }

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (!file) {
      setError("Choose an archive (.zip or .tar.gz) first.");
      fileInput.current?.focus();
      return;
    }
    setError(null);
    setNote(null);
    setResult(null);
    setThrough(null);
    setStage("ticket");
    setSent([0, file.size]);
    try {
      const { dataset, direct } = await uploadDataset(file, name.trim(), format, {
        onStage: (s, n) => {
          setStage(s);
          if (n) setNote(n);
        },
        onProgress: (a, b) => setSent([a, b]),
      });
      setSent(([, total]) => [total, total]);
      setThrough(direct ? "storage" : "api");
      setResult(dataset);
      onDone();
    } catch (exc) {
      setError((exc as Error).message);
    } finally {
      setStage(null);
    }
  }

  const busy = stage !== null;
  return (
    <section className="card" aria-labelledby="upload-title">
      <h2 id="upload-title">Upload a dataset</h2>
      <form onSubmit={submit} className="grid-form" noValidate>
        <label>
          Archive (.zip or .tar.gz of the dataset folder)
          <input ref={fileInput} type="file" accept=".zip,.tar.gz,.tgz,application/zip,application/gzip" onChange={(e) => pick(e.target.files?.[0] ?? null)} disabled={busy} />
        </label>
        <label>
          Name
          <input type="text" value={name} onChange={(e) => setName(e.target.value)} disabled={busy} maxLength={100} />
        </label>
        <label>
          Format
          <select value={format} onChange={(e) => setFormat(e.target.value)} disabled={busy}>
            {FORMATS.map((f) => (
              <option key={f}>{f}</option>
            ))}
          </select>
        </label>
        <div className="form-actions">
          <button type="submit" disabled={busy}>
            {busy ? "Uploading…" : "Upload"}
          </button>
        </div>
      </form>
      {(busy || result) && (
        <div role="status" aria-live="polite" data-testid="upload-progress" data-through={through ?? undefined}>
          <p>
            {busy
              ? STAGES[stage]
              : `Uploaded ${bytes(sent[1])} ${through === "api" ? "through the API" : "straight to storage"}.`}
          </p>
          <ProgressBar value={sent[0]} max={sent[1]} label={`${bytes(sent[0])} of ${bytes(sent[1])}`} />
        </div>
      )}
      {note && <p className="muted small">{note}</p>}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {result && <Followed dataset={result} onChange={onDone} />}
    </section>
  );
}

function Followed({ dataset, onChange }: { dataset: Dataset; onChange: () => void }) {
  const { dataset: current, note } = useValidated(dataset);
  // The list below shows the same version: read it again once the validation has ended.
  const status = current.status;
  useEffect(() => {
    if (status !== "VALIDATING") onChange();
  }, [status, onChange]);
  return (
    <div className="upload-result" aria-live="polite">
      {dataset.created === false && <p className="muted">This archive was uploaded under this name before: here is that version.</p>}
      <DatasetView dataset={current} note={note} />
    </div>
  );
}
