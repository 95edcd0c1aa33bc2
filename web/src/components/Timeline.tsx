// The job's events in order, one line each, newest last.

import { useState } from "react";
import type { JobEvent } from "../api";
import { bytes, number, time } from "../format";

const SHOWN = 150;

function describe(event: JobEvent): string {
  const p = event.payload;
  switch (event.type) {
    case "job.submitted":
      return `submitted to pool ${String(p.pool ?? "")}`;
    case "job.queued":
      return `queued on pool ${String(p.pool ?? "")}`;
    case "job.running":
      return `running, attempt ${event.attempt}`;
    case "job.progress": {
      const metrics = p.metrics && typeof p.metrics === "object" ? Object.entries(p.metrics).slice(0, 4) : [];
      const resumed = typeof p.resumed_from_epoch === "number" ? ` (resumed after epoch ${p.resumed_from_epoch})` : "";
      return `epoch ${String(p.epoch)}/${String(p.epochs ?? "?")}${resumed}: ${metrics.map(([k, v]) => `${k} ${number(v)}`).join(", ")}`;
    }
    case "job.log":
      return `[${String(p.level ?? "info")}] ${String(p.message ?? "")}`;
    case "job.artifact":
      return `artifact ${String(p.name)} (${bytes(typeof p.size === "number" ? p.size : null)})`;
    case "job.retrying":
      return `retrying: ${String(p.reason ?? "")}${p.next_attempt ? `; attempt ${String(p.next_attempt)}` : ""}${p.retry_at ? ` at ${time(String(p.retry_at))}` : ""}`;
    case "job.pending":
      return String(p.pending_reason ?? p.reason ?? "waiting");
    case "job.preempted":
      return `preempted${p.reason ? `: ${String(p.reason)}` : ""}`;
    case "job.succeeded":
      return "succeeded";
    case "job.failed":
      return `failed: ${String(p.reason ?? "")}`;
    case "job.cancelled":
      return `cancelled: ${String(p.reason ?? "")}`;
    default:
      return JSON.stringify(p);
  }
}

export function Timeline({ events }: { events: JobEvent[] }) {
  const [all, setAll] = useState(false);
  const shown = all ? events : events.slice(-SHOWN);
  return (
    <section aria-labelledby="timeline-title">
      <h2 id="timeline-title">Events</h2>
      {events.length === 0 ? (
        <p className="empty">No events yet.</p>
      ) : (
        <>
          {shown.length < events.length && (
            <button type="button" className="secondary small" onClick={() => setAll(true)}>
              Show all {events.length} events
            </button>
          )}
          <ol className="timeline">
            {shown.map((event) => (
              <li key={event.version} className={`ev ev-${event.type.replace("job.", "")}`} data-type={event.type}>
                <time dateTime={event.time}>{time(event.time)}</time>
                <span className="ev-type">{event.type.replace("job.", "")}</span>
                <span className="ev-text">{describe(event)}</span>
              </li>
            ))}
          </ol>
        </>
      )}
    </section>
  );
}
