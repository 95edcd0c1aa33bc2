// Live job events for a page: the project's stream (`/v1/events`, every job) or one job's
// (`/v1/jobs/{id}/events`, its whole history, then live until its terminal event).

import { useEffect, useRef, useState } from "react";
import { TERMINAL, type JobEvent } from "./api";
import { openStream, type SseMessage, type StreamState } from "./sse";

function parse(message: SseMessage): JobEvent | null {
  try {
    const event = JSON.parse(message.data) as JobEvent;
    return event && typeof event === "object" && typeof event.job_id === "string" ? event : null;
  } catch {
    return null;
  }
}

/** Follow `path` while `active`; `onEvent` sees every job event. Returns the connection's state. */
export function useJobEvents(path: string | null, onEvent: (event: JobEvent) => void, endsAtTerminal: boolean): StreamState {
  const [state, setState] = useState<StreamState>({ status: "connecting" });
  const handler = useRef(onEvent);
  handler.current = onEvent;

  useEffect(() => {
    if (!path) return;
    return openStream(path, {
      onMessage: (message) => {
        const event = parse(message);
        if (event) handler.current(event);
      },
      onState: setState,
      isLast: endsAtTerminal ? (message) => TERMINAL.has(parse(message)?.state ?? "") : undefined,
    });
  }, [path, endsAtTerminal]);
  return state;
}
