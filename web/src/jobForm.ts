// The submit form's model: its fields, what each framework calls them in `hyperparameters`, a job's
// settings as a form ("train again") and a form as a job body, and where a 422's `loc` lands on the form.

import type { FieldError, Job, Json } from "./api";

export type Framework = "timm" | "ultralytics";

export interface Form {
  framework: Framework;
  task: string;
  model: string;
  dataset: string;
  pool: string;
  epochs: string;
  imgsz: string;
  batch: string;
  lr: string;
  extra: string;
  weights: string;
  export: string[];
  max_attempts: string;
  name: string;
}

// The form's common fields, and what each framework calls them in `hyperparameters`.
export const NAMES: Record<Framework, { epochs: string; imgsz: string; batch: string; lr: string }> = {
  timm: { epochs: "epochs", imgsz: "image_size", batch: "batch_size", lr: "learning_rate" },
  ultralytics: { epochs: "epochs", imgsz: "imgsz", batch: "batch", lr: "lr0" },
};
export const TASKS: Record<Framework, string[]> = { timm: ["classify"], ultralytics: ["detect", "segment", "classify"] };
export const MODELS: Record<string, string[]> = {
  "timm:classify": ["resnet18", "resnet50", "efficientnet_b0", "mobilenetv3_small_100", "vit_tiny_patch16_224"],
  "ultralytics:detect": ["yolo11n.yaml", "yolo11s.yaml", "yolov8n.yaml"],
  "ultralytics:segment": ["yolo11n-seg.yaml", "yolo11s-seg.yaml"],
  "ultralytics:classify": ["yolo11n-cls.yaml", "yolo11s-cls.yaml"],
};
export const DEFAULTS: Record<Framework, Pick<Form, "epochs" | "imgsz" | "batch" | "lr">> = {
  timm: { epochs: "10", imgsz: "224", batch: "16", lr: "0.001" },
  ultralytics: { epochs: "10", imgsz: "640", batch: "16", lr: "" },
};
export const FORMATS: Record<string, string[]> = {
  "timm:classify": ["imagefolder"],
  "ultralytics:detect": ["yolo-detect", "yolo-segment"],
  "ultralytics:segment": ["yolo-segment"],
  "ultralytics:classify": ["imagefolder"],
};

export const EMPTY: Form = {
  framework: "timm",
  task: "classify",
  model: "resnet18",
  dataset: "",
  pool: "local",
  ...DEFAULTS.timm,
  extra: "",
  weights: "",
  export: [],
  max_attempts: "3",
  name: "",
};

export type Field = keyof Form | "form";

function text(value: Json | undefined): string {
  return value === undefined || value === null ? "" : typeof value === "string" ? value : JSON.stringify(value);
}

export function fromJob(job: Job): Form {
  const framework: Framework = job.framework === "ultralytics" ? "ultralytics" : "timm";
  const names = NAMES[framework];
  const hp = { ...job.hyperparameters };
  const take = (name: string) => {
    const value = hp[name];
    delete hp[name];
    return text(value);
  };
  const form: Form = {
    framework,
    task: job.task,
    model: job.model,
    dataset: job.dataset,
    pool: job.pool,
    epochs: take(names.epochs),
    imgsz: take(names.imgsz),
    batch: take(names.batch),
    lr: take(names.lr),
    extra: Object.entries(hp)
      .map(([k, v]) => `${k}=${text(v)}`)
      .join("\n"),
    weights: job.weights ?? "",
    export: job.export ?? [],
    max_attempts: String(job.max_attempts),
    name: job.name ? `${job.name} (again)` : "",
  };
  return form;
}

/** `name=value` lines (or a JSON object) as hyperparameters: numbers and true/false as such. */
function parseExtra(source: string): Record<string, Json> {
  const trimmed = source.trim();
  if (!trimmed) return {};
  if (trimmed.startsWith("{")) {
    const parsed = JSON.parse(trimmed) as unknown;
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("must be a JSON object");
    return parsed as Record<string, Json>;
  }
  const out: Record<string, Json> = {};
  for (const [i, raw] of trimmed.split(/\n/).entries()) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq < 1) throw new Error(`line ${i + 1}: write name=value`);
    out[line.slice(0, eq).trim()] = scalar(line.slice(eq + 1).trim());
  }
  return out;
}

function scalar(value: string): Json {
  if (value === "true") return true;
  if (value === "false") return false;
  if (value === "null") return null;
  if (value !== "" && Number.isFinite(Number(value))) return Number(value);
  if (/^[[{"]/.test(value)) {
    try {
      return JSON.parse(value) as Json;
    } catch {
      return value;
    }
  }
  return value;
}

/** Where on the form an error at `loc` belongs. */
export function fieldOf(loc: (string | number)[], framework: Framework): Field {
  const path = loc[0] === "body" ? loc.slice(1) : loc;
  const [first, second] = path;
  if (first === "hyperparameters") {
    const names = NAMES[framework];
    for (const field of ["epochs", "imgsz", "batch", "lr"] as const) if (second === names[field]) return field;
    return "extra";
  }
  if (typeof first === "string" && first in EMPTY) return first as keyof Form;
  return "form";
}

export function body(form: Form): Record<string, Json> {
  const names = NAMES[form.framework];
  const hp: Record<string, Json> = {};
  for (const field of ["epochs", "imgsz", "batch", "lr"] as const) {
    const value = form[field].trim();
    if (value !== "") hp[names[field]] = scalar(value);
  }
  Object.assign(hp, parseExtra(form.extra));
  const out: Record<string, Json> = {
    framework: form.framework,
    task: form.task,
    model: form.model.trim(),
    dataset: form.dataset,
    pool: form.pool.trim(),
    hyperparameters: hp,
    max_attempts: scalar(form.max_attempts.trim() || "3"),
  };
  if (form.name.trim()) out.name = form.name.trim();
  if (form.weights.trim()) out.weights = form.weights.trim();
  if (form.export.length) out.export = form.export;
  return out;
}

export const LABELS: Record<keyof Form, string> = {
  framework: "Framework",
  task: "Task",
  model: "Model",
  dataset: "Dataset",
  pool: "Pool",
  epochs: "Epochs",
  imgsz: "Image size",
  batch: "Batch size",
  lr: "Learning rate",
  extra: "Further hyperparameters",
  weights: "Starting weights",
  export: "Export",
  max_attempts: "Attempts",
  name: "Name",
};

export function placed(found: FieldError[], framework: Framework): Partial<Record<Field, string[]>> {
  const out: Partial<Record<Field, string[]>> = {};
  for (const error of found) {
    const field = fieldOf(error.loc, framework);
    const path = error.loc[0] === "body" ? error.loc.slice(1) : error.loc;
    // On the free-form fields, say which entry it is.
    const prefix = field === "extra" && path.length > 1 ? `${path.slice(1).join(".")}: ` : field === "form" ? `${path.join(".") || "body"}: ` : "";
    (out[field] ??= []).push(prefix + error.msg);
  }
  return out;
}

