// The REST API under /v1, same origin, `Authorization: Bearer <key>` on every request. Failures come back as
// `ApiError` with the API's own `{error, detail}`; a 422's detail is pydantic-style `[{loc, msg, type}]`.

import { getKey, signOut } from "./auth";

export type JobState = "PENDING" | "QUEUED" | "RUNNING" | "SUCCEEDED" | "FAILED" | "CANCELLED";
export const JOB_STATES: JobState[] = ["PENDING", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"];
export const TERMINAL: ReadonlySet<string> = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface Job {
  id: string;
  name: string | null;
  state: JobState;
  attempt: number;
  max_attempts: number;
  version: number;
  framework: string;
  task: string;
  model: string;
  hyperparameters: Record<string, Json>;
  dataset: string;
  dataset_version: number | null;
  pool: string;
  trace_id: string;
  created_at: string;
  updated_at: string;
  metrics: Record<string, Json> | null;
  final_metrics: Record<string, Json> | null;
  reason: string | null;
  weights?: string | null;
  export?: string[] | null;
  // Waiting jobs, where the API reports them.
  queue_position?: number | null;
  pending_reason?: string | null;
}

export interface JobPage {
  items: Job[];
  next_cursor: string | null;
}

export interface JobEvent {
  job_id: string;
  project_id?: string;
  type: string;
  state: JobState;
  attempt: number;
  version: number;
  time: string;
  trace_id?: string;
  payload: Record<string, Json>;
  // `job.pending` (a job's stream with `?pending=true`): why it waits; such an event has no version.
  queue_position?: number | null;
  pending_reason?: string | null;
}

/** `job.pending` carries its fields at the top (the API's own frame), other events in `payload`. */
export function pendingOf(event: JobEvent): { queue_position: number | null; pending_reason: string | null } | null {
  if (event.type !== "job.pending") return null;
  const source = "pending_reason" in event || "queue_position" in event ? event : event.payload ?? {};
  return {
    queue_position: typeof source.queue_position === "number" ? source.queue_position : null,
    pending_reason: typeof source.pending_reason === "string" ? source.pending_reason : null,
  };
}

export interface MetricPoint {
  epoch: number;
  value: number;
  attempt: number;
  time: string;
}

export interface AttemptMark {
  attempt: number;
  first_epoch: number;
  resumed_from_epoch: number | null;
}

export interface MetricsHistory {
  epochs: number | null;
  series: Record<string, MetricPoint[]>;
  attempts: AttemptMark[];
}

export interface Artifact {
  name: string;
  size: number;
  sha256: string;
  created_at: string;
  download_path: string;
}

export interface Problem {
  file: string | null;
  line: number | null;
  message: string;
}

export type DatasetStatus = "VALIDATING" | "READY" | "REJECTED" | "FAILED";

export interface Dataset {
  id: string;
  name: string;
  version: number;
  format: string;
  status: DatasetStatus;
  filename: string;
  size: number;
  sha256: string;
  content_hash: string | null;
  summary: DatasetSummary | null;
  problems: Problem[];
  problem_count: number;
  reason: string | null;
  validation_job_id: string | null;
  created_at: string;
  created?: boolean;
}

export interface DatasetSummary {
  classes?: string[] | number;
  splits?: Record<string, { images?: number; labels?: number; background_images?: number; instances?: Record<string, number>; images_per_class?: Record<string, number> }>;
  files?: number;
  total_bytes?: number;
  other_files?: number;
}

export interface UploadTicket {
  upload_id: string;
  url: string;
  method: string;
  expires_at: string;
  max_bytes: number;
}

export interface Pool {
  name: string;
  waiting: number;
  running: number;
  runners_waiting: number;
  dispatches_held: number;
  last_taken_at: string | null;
  oldest_waiting_seconds: number | null;
}

export interface FieldError {
  loc: (string | number)[];
  msg: string;
  type?: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: unknown,
  ) {
    super(describe(status, code, detail));
  }

  /** A 422's field errors, pydantic-style; empty for any other failure. */
  get fieldErrors(): FieldError[] {
    if (this.status !== 422 || !Array.isArray(this.detail)) return [];
    return this.detail.filter(
      (item): item is FieldError => typeof item === "object" && item !== null && Array.isArray(item.loc),
    );
  }
}

function describe(status: number, code: string, detail: unknown): string {
  if (status === 0) return `Cannot reach the API: ${String(detail)}`;
  let text: string;
  if (typeof detail === "string") text = detail;
  else if (Array.isArray(detail))
    text = detail
      .map((item) => (item && typeof item === "object" && "msg" in item ? `${(item.loc ?? []).join(".")}: ${item.msg}` : JSON.stringify(item)))
      .join("; ");
  else if (detail == null) text = code;
  else text = JSON.stringify(detail);
  return `${text} (${code}, HTTP ${status})`;
}

export function authHeaders(key: string | null = getKey()): Record<string, string> {
  return key ? { Authorization: `Bearer ${key}` } : {};
}

export async function errorOf(response: Response): Promise<ApiError> {
  let code = `http_${response.status}`;
  let detail: unknown = response.statusText;
  try {
    const body = await response.json();
    if (body && typeof body === "object") {
      code = body.error ?? code;
      detail = body.detail ?? detail;
    }
  } catch {
    // not JSON: keep the status text
  }
  return new ApiError(response.status, code, detail);
}

/** A refused key ends the session (the sign-in page then says why); a caller still gets the error. */
export function refused(error: ApiError): void {
  if (error.status === 401) signOut(`The API refused the key: ${error.message}`);
}

interface RequestOptions {
  method?: string;
  json?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  key?: string;
}

export async function request(path: string, options: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { Accept: "application/json", ...authHeaders(options.key ?? getKey()), ...options.headers };
  let body: BodyInit | undefined;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  }
  let response: Response;
  try {
    response = await fetch(path, { method: options.method ?? "GET", headers, body, signal: options.signal, cache: "no-store" });
  } catch (exc) {
    if (exc instanceof DOMException && exc.name === "AbortError") throw exc;
    throw new ApiError(0, "network", exc instanceof Error ? exc.message : String(exc));
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (options.key === undefined) refused(error);
    throw error;
  }
  return response;
}

export async function getJson<T>(path: string, options: RequestOptions = {}): Promise<T> {
  return (await request(path, options)).json() as Promise<T>;
}

export const api = {
  jobs: (query: URLSearchParams, signal?: AbortSignal) => getJson<JobPage>(`/v1/jobs?${query}`, { signal }),
  job: (id: string, signal?: AbortSignal) => getJson<Job>(`/v1/jobs/${encodeURIComponent(id)}`, { signal }),
  metrics: (id: string, signal?: AbortSignal) =>
    getJson<MetricsHistory>(`/v1/jobs/${encodeURIComponent(id)}/metrics`, { signal }),
  artifacts: (id: string, signal?: AbortSignal) =>
    getJson<Artifact[]>(`/v1/jobs/${encodeURIComponent(id)}/artifacts`, { signal }),
  artifactUrl: (id: string, name: string) =>
    getJson<{ url: string; expires_at: string }>(
      `/v1/jobs/${encodeURIComponent(id)}/artifacts/${encodeURIComponent(name)}/url`,
    ),
  cancel: (id: string) => getJson<Job>(`/v1/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST", json: {} }),
  submit: (body: unknown, idempotencyKey: string) =>
    getJson<Job>("/v1/jobs", { method: "POST", json: body, headers: { "Idempotency-Key": idempotencyKey } }),
  datasets: (signal?: AbortSignal) => getJson<{ items: Dataset[] }>("/v1/datasets?limit=500", { signal }),
  dataset: (ref: string, signal?: AbortSignal) => getJson<Dataset>(`/v1/datasets/${encodeURIComponent(ref)}`, { signal }),
  requestUpload: () => getJson<UploadTicket>("/v1/datasets/uploads", { method: "POST" }),
  registerUpload: (body: { name: string; format: string; upload_id: string; filename: string }) =>
    getJson<Dataset>("/v1/datasets", { method: "POST", json: body }),
  pools: (signal?: AbortSignal) => getJson<{ items: Pool[] }>("/v1/pools", { signal }),
};
