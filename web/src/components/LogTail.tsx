// The job's log: the last lines from `GET /v1/jobs/{id}/logs?tail=N`, followed while the job runs
// (`&follow=true`, plain text). Where the API does not serve logs, the job's `job.log` events stand in.

import { useEffect, useRef, useState } from "react";
import { request, ApiError, type JobEvent } from "../api";

const TAIL = 200;
const KEEP = 2000;

type Source = "loading" | "logs" | "events" | "error";

export function LogTail({ jobId, finished, events }: { jobId: string; finished: boolean; events: JobEvent[] }) {
  const [lines, setLines] = useState<string[]>([]);
  const [source, setSource] = useState<Source>("loading");
  const [following, setFollowing] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const box = useRef<HTMLPreElement>(null);
  const stick = useRef(true);

  useEffect(() => {
    const controller = new AbortController();
    let stopped = false;
    (async () => {
      for (let tries = 0; !stopped; tries++) {
        const follow = !finished;
        try {
          const response = await request(`/v1/jobs/${encodeURIComponent(jobId)}/logs?tail=${TAIL}${follow ? "&follow=true" : ""}`, {
            headers: { Accept: "text/plain" },
            signal: controller.signal,
          });
          setSource("logs");
          setError(null);
          setFollowing(follow);
          const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
          let partial = "";
          let fresh = true;
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            const parts = (partial + value).split("\n");
            partial = parts.pop() ?? "";
            setLines((old) => (fresh ? parts : [...old, ...parts]).slice(-KEEP));
            fresh = false;
          }
          if (partial) setLines((old) => [...(fresh ? [] : old), partial].slice(-KEEP));
          else if (fresh) setLines([]);
          setFollowing(false);
          if (!follow) return;
          // The follow ended: the job ended, or the connection dropped; read the tail again to find out.
          await new Promise((resolve) => setTimeout(resolve, Math.min(1000 * 2 ** tries, 10_000)));
        } catch (exc) {
          if (controller.signal.aborted) return;
          if (exc instanceof ApiError && (exc.status === 404 || exc.status === 405)) {
            setSource("events");
            return;
          }
          setSource("error");
          setError((exc as Error).message);
          await new Promise((resolve) => setTimeout(resolve, Math.min(1000 * 2 ** tries, 10_000)));
        }
      }
    })();
    return () => {
      stopped = true;
      controller.abort();
    };
  }, [jobId, finished]);

  const shown =
    source === "events"
      ? events.filter((e) => e.type === "job.log").map((e) => `[${String(e.payload.level ?? "info")}] ${String(e.payload.message ?? "")}`)
      : lines;

  useEffect(() => {
    if (stick.current && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [shown.length]);

  return (
    <section aria-labelledby="logs-title">
      <div className="title-row">
        <h2 id="logs-title">Log</h2>
        <span className="muted small" role="status">
          {source === "logs" && (following ? "following the job's output" : `last ${TAIL} lines`)}
          {source === "events" && "the job's log events (this API serves no log endpoint)"}
          {source === "error" && `log unavailable, retrying: ${error}`}
        </span>
      </div>
      {source === "loading" ? (
        <p className="muted">Loading the log…</p>
      ) : shown.length === 0 ? (
        <p className="empty">No log lines yet.</p>
      ) : (
        <pre
          className="log"
          ref={box}
          tabIndex={0}
          aria-label="Log lines"
          onScroll={(e) => {
            const el = e.currentTarget;
            stick.current = el.scrollTop + el.clientHeight >= el.scrollHeight - 8;
          }}
        >
          {shown.join("\n")}
        </pre>
      )}
    </section>
  );
}
