// The states every view shows the same way: loading, empty, an error with the API's message, a live
// stream's connection, a job's state.

import type { ReactNode } from "react";
import type { StreamState } from "../sse";

export function Loading({ what }: { what: string }) {
  return (
    <p className="muted" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" /> Loading {what}…
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="empty">{children}</div>;
}

export function ErrorBox({ error, retry }: { error: Error | string; retry?: () => void }) {
  return (
    <div className="error" role="alert">
      <strong>Something went wrong.</strong> {typeof error === "string" ? error : error.message}
      {retry && (
        <button type="button" className="secondary small" onClick={retry}>
          Try again
        </button>
      )}
    </div>
  );
}

const STREAM_TEXT = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  ended: "complete",
  failed: "not live",
} as const;

export function StreamBadge({ state, label = "Updates" }: { state: StreamState; label?: string }) {
  const retry = state.status === "reconnecting" && state.retryIn ? ` (next try in ${Math.ceil(state.retryIn / 1000)} s)` : "";
  return (
    <span className={`stream stream-${state.status}`} role="status" aria-live="polite" data-stream={state.status}>
      <span className="dot" aria-hidden="true" />
      {label}: {STREAM_TEXT[state.status]}
      {retry}
      {state.error ? ` — ${state.error}` : ""}
    </span>
  );
}

export function StateBadge({ state }: { state: string }) {
  return (
    <span className={`badge state-${state.toLowerCase()}`} data-state={state}>
      {state}
    </span>
  );
}

export function ProgressBar({ value, max, label }: { value: number; max: number; label: string }) {
  const share = max > 0 ? Math.min(1, Math.max(0, value / max)) : 0;
  return (
    <div className="progress" role="progressbar" aria-label={label} aria-valuemin={0} aria-valuemax={max} aria-valuenow={value}>
      <div className="progress-fill" style={{ width: `${(share * 100).toFixed(1)}%` }} />
      <span className="progress-text">{label}</span>
    </div>
  );
}
