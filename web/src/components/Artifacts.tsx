// A job's artifacts with downloads. A link cannot carry the Authorization header, so the page asks the API
// (with the key) for a short-lived signed URL and follows it: storage answers with the file as an attachment
// and the browser saves it as any download, never holding it in the page's memory.

import { useState } from "react";
import { api, type Artifact } from "../api";
import { bytes, time } from "../format";
import { useResource } from "../hooks";
import { Empty, ErrorBox, Loading } from "./States";

async function save(jobId: string, artifact: Artifact): Promise<void> {
  const { url } = await api.artifactUrl(jobId, artifact.name);
  const link = document.createElement("a");
  link.href = url;
  link.download = artifact.name; // honoured where storage shares the page's origin; else the attachment's name
  link.rel = "noopener";
  document.body.append(link);
  link.click();
  link.remove();
}

export function Artifacts({ jobId, version }: { jobId: string; version: number }) {
  const list = useResource((signal) => api.artifacts(jobId, signal), [jobId, version]);
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  async function download(artifact: Artifact) {
    setBusy(artifact.name);
    setError(null);
    try {
      await save(jobId, artifact);
    } catch (exc) {
      setError(`${artifact.name}: ${(exc as Error).message}`);
    } finally {
      setBusy(null);
    }
  }

  return (
    <section aria-labelledby="artifacts-title">
      <h2 id="artifacts-title">Artifacts</h2>
      {list.loading && !list.data && <Loading what="the artifacts" />}
      {list.error && <ErrorBox error={list.error} retry={list.reload} />}
      {error && <ErrorBox error={error} />}
      {list.data && list.data.length === 0 && <Empty>No artifacts yet.</Empty>}
      {list.data && list.data.length > 0 && (
        <table className="responsive">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Size</th>
              <th scope="col">Written</th>
              <th scope="col">SHA-256</th>
              <th scope="col">
                <span className="sr-only">Download</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {list.data.map((artifact) => (
              <tr key={artifact.name} data-artifact={artifact.name}>
                <td data-label="Name" className="mono">
                  {artifact.name}
                </td>
                <td data-label="Size">{bytes(artifact.size)}</td>
                <td data-label="Written">{time(artifact.created_at)}</td>
                <td data-label="SHA-256" className="mono small clip" title={artifact.sha256}>
                  {artifact.sha256.slice(0, 16)}…
                </td>
                <td>
                  <button
                    type="button"
                    className="secondary small"
                    disabled={busy !== null}
                    onClick={() => download(artifact)}
                    aria-label={`Download ${artifact.name}`}
                  >
                    {busy === artifact.name ? "Starting…" : "Download"}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
