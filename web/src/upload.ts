// Uploading a dataset archive: a signed upload URL from the API, the archive PUT straight to storage with
// progress, then the dataset registered from it. Should storage refuse the browser (an S3 bucket or local
// storage without CORS for this origin), the archive goes through the API instead, still with progress.

import { api, ApiError, authHeaders, type Dataset } from "./api";

export type UploadStage = "ticket" | "storage" | "api" | "register";

export interface UploadCallbacks {
  onStage: (stage: UploadStage, note?: string) => void;
  onProgress: (sent: number, total: number) => void;
}

function send(method: string, url: string, body: XMLHttpRequestBodyInit, headers: Record<string, string>, cb: UploadCallbacks): Promise<XMLHttpRequest> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) cb.onProgress(e.loaded, e.total);
    };
    xhr.onload = () => resolve(xhr);
    xhr.onerror = () => reject(new ApiError(0, "network", "the upload was refused or the connection dropped"));
    xhr.onabort = () => reject(new ApiError(0, "aborted", "the upload was stopped"));
    xhr.send(body);
  });
}

function failure(xhr: XMLHttpRequest): ApiError {
  try {
    const body = JSON.parse(xhr.responseText);
    return new ApiError(xhr.status, body.error ?? `http_${xhr.status}`, body.detail ?? xhr.statusText);
  } catch {
    return new ApiError(xhr.status, `http_${xhr.status}`, xhr.responseText || xhr.statusText);
  }
}

export async function uploadDataset(file: File, name: string, format: string, cb: UploadCallbacks): Promise<{ dataset: Dataset; direct: boolean }> {
  cb.onStage("ticket");
  const ticket = await api.requestUpload();
  if (file.size > ticket.max_bytes) throw new ApiError(413, "payload_too_large", `the archive is ${file.size} bytes; the limit is ${ticket.max_bytes}`);
  cb.onStage("storage");
  let direct = true;
  try {
    const put = await send(ticket.method || "PUT", ticket.url, file, {}, cb);
    if (put.status < 200 || put.status >= 300) throw failure(put);
  } catch (exc) {
    if (!(exc instanceof ApiError) || exc.status !== 0 || exc.code === "aborted") throw exc;
    direct = false;
  }
  if (direct) {
    cb.onStage("register", "Sent straight to storage through the signed upload URL.");
    return { dataset: await api.registerUpload({ name, format, upload_id: ticket.upload_id, filename: file.name }), direct };
  }
  cb.onStage("api", "Storage did not accept an upload from this page (no CORS for it), so the archive goes through the API.");
  cb.onProgress(0, file.size);
  const form = new FormData();
  form.append("name", name);
  form.append("format", format);
  form.append("file", file, file.name);
  const xhr = await send("POST", "/v1/datasets", form, { ...authHeaders(), Accept: "application/json" }, cb);
  if (xhr.status !== 200 && xhr.status !== 201) throw failure(xhr);
  return { dataset: JSON.parse(xhr.responseText) as Dataset, direct };
}
