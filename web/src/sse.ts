// Server-Sent Events over `fetch` streaming: EventSource cannot send an Authorization header, and the key
// must never go into a URL. Resumes with `Last-Event-ID` after a drop, with a growing pause between tries,
// and says where it stands (connecting, live, reconnecting, ended, failed) so the page can show it.

import { ApiError, authHeaders, errorOf, refused } from "./api";

export type StreamStatus = "connecting" | "live" | "reconnecting" | "ended" | "failed";

export interface SseMessage {
  id: string | null;
  event: string;
  data: string;
}

export interface StreamState {
  status: StreamStatus;
  /** ms until the next try, while reconnecting */
  retryIn?: number;
  error?: string;
}

export interface StreamOptions {
  onMessage: (message: SseMessage) => void;
  onState: (state: StreamState) => void;
  /** The stream is complete after this message (a job's terminal event): no reconnect when it closes. */
  isLast?: (message: SseMessage) => boolean;
  lastEventId?: string | null;
}

const MAX_DELAY_MS = 15_000;
// The api sends a keep-alive comment every 15 s: a stream silent for much longer is dead.
const STALL_MS = 45_000;

/** Parse an event stream incrementally: feed text chunks, get whole messages. */
export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private event = "";
  private id: string | null = null;
  lastEventId: string | null = null;
  retry: number | null = null;

  feed(chunk: string, emit: (message: SseMessage) => void): void {
    this.buffer += chunk;
    let index: number;
    while ((index = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, index);
      const newline = this.buffer.startsWith("\r\n", index) ? 2 : 1;
      // A lone '\r' at the end may be the first half of '\r\n': wait for the next chunk.
      if (newline === 1 && this.buffer[index] === "\r" && index === this.buffer.length - 1) break;
      this.buffer = this.buffer.slice(index + newline);
      this.line(line, emit);
    }
  }

  private line(line: string, emit: (message: SseMessage) => void): void {
    if (line === "") {
      if (this.data.length) {
        if (this.id !== null) this.lastEventId = this.id;
        emit({ id: this.id, event: this.event || "message", data: this.data.join("\n") });
      }
      this.data = [];
      this.event = "";
      this.id = null;
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
  }
}

/** Open `path` as an event stream; returns a function that closes it for good. */
export function openStream(path: string, options: StreamOptions): () => void {
  const controller = new AbortController();
  let closed = false;
  let lastEventId = options.lastEventId ?? null;
  let baseDelay = 1000;
  let failures = 0;

  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      controller.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      });
    });

  async function once(): Promise<"done" | "again" | "stop"> {
    const attempt = new AbortController();
    const abort = () => attempt.abort();
    controller.signal.addEventListener("abort", abort);
    let stall: ReturnType<typeof setTimeout> | undefined;
    const watch = () => {
      clearTimeout(stall);
      stall = setTimeout(abort, STALL_MS);
    };
    try {
      const headers: Record<string, string> = { Accept: "text/event-stream", ...authHeaders() };
      if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
      watch();
      const response = await fetch(path, { headers, signal: attempt.signal, cache: "no-store" });
      if (!response.ok) {
        const error = await errorOf(response);
        refused(error);
        // A refused key, a job that does not exist, a bad request: trying again cannot help.
        if (response.status < 500 && response.status !== 429) {
          options.onState({ status: "failed", error: error.message });
          return "stop";
        }
        throw error;
      }
      if (!response.body) throw new ApiError(0, "network", "this browser cannot stream responses");
      options.onState({ status: "live" });
      const parser = new SseParser();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let last: SseMessage | null = null;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        watch();
        parser.feed(value, (message) => {
          last = message;
          if (message.id !== null) lastEventId = message.id;
          failures = 0;
          options.onMessage(message);
        });
        if (parser.retry !== null) baseDelay = parser.retry;
      }
      if (last && options.isLast?.(last)) return "done";
      return "again";
    } catch {
      if (closed) return "stop";
      failures += 1;
      return "again";
    } finally {
      clearTimeout(stall);
      controller.signal.removeEventListener("abort", abort);
    }
  }

  (async () => {
    options.onState({ status: "connecting" });
    for (;;) {
      const outcome = await once();
      if (closed || outcome === "stop") return;
      if (outcome === "done") {
        options.onState({ status: "ended" });
        return;
      }
      const delay = Math.min(baseDelay * 2 ** Math.min(failures, 4), MAX_DELAY_MS);
      options.onState({ status: "reconnecting", retryIn: delay });
      await wait(delay);
      if (closed) return;
      options.onState({ status: "connecting" });
    }
  })();

  return () => {
    closed = true;
    controller.abort();
  };
}
