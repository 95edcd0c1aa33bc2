// Submit a timm or Ultralytics job. The API decides what is valid: its 422 names each bad field
// (`["body", "hyperparameters", "epochs"]`), and the error is shown on that field. "Train again" fills the
// form from an earlier job (`?from=<job id>`).

import { useEffect, useMemo, useRef, useState, type FormEvent, type ReactNode } from "react";
import { api, ApiError, type Job, type Json } from "../api";
import { body, DEFAULTS, EMPTY, FORMATS, fromJob, LABELS, MODELS, placed, TASKS, type Field, type Form, type Framework } from "../jobForm";
import { useResource, useTitle } from "../hooks";
import { Link, navigate } from "../router";
import { ErrorBox, Loading } from "../components/States";

export function SubmitPage({ from }: { from: string | null }) {
  useTitle("Submit a job");
  const source = useResource(from ? (signal) => api.job(from, signal) : null, [from]);
  if (from && source.loading) return <Loading what="the job's settings" />;
  if (from && source.error) return <ErrorBox error={source.error} retry={source.reload} />;
  return <SubmitForm initial={source.data ? fromJob(source.data) : null} from={source.data} />;
}

function SubmitForm({ initial, from }: { initial: Form | null; from: Job | null }) {
  const preset = new URLSearchParams(window.location.search).get("dataset");
  const [form, setForm] = useState<Form>(initial ?? { ...EMPTY, dataset: preset ?? "" });
  const [errors, setErrors] = useState<Partial<Record<Field, string[]>>>({});
  const [sending, setSending] = useState(false);
  const datasets = useResource((signal) => api.datasets(signal), []);
  const pools = useResource((signal) => api.pools(signal), []);
  const formRef = useRef<HTMLFormElement>(null);

  const combo = `${form.framework}:${form.task}`;
  const usable = useMemo(
    () => (datasets.data?.items ?? []).filter((d) => d.status === "READY" && (FORMATS[combo] ?? []).includes(d.format)),
    [datasets.data, combo],
  );
  useEffect(() => {
    if (!form.dataset && usable[0]) setForm((f) => ({ ...f, dataset: usable[0]!.id }));
  }, [usable, form.dataset]);

  const set = <K extends keyof Form>(name: K, value: Form[K]) => setForm((f) => ({ ...f, [name]: value }));
  function setFramework(framework: Framework) {
    const task = TASKS[framework][0]!;
    setForm((f) => ({ ...f, framework, task, model: MODELS[`${framework}:${task}`]![0]!, ...DEFAULTS[framework], dataset: "" }));
  }
  function setTask(task: string) {
    setForm((f) => ({ ...f, task, model: MODELS[`${f.framework}:${task}`]?.[0] ?? f.model, dataset: "" }));
  }

  async function submit(event: FormEvent) {
    event.preventDefault();
    let payload: Record<string, Json>;
    try {
      payload = body(form);
    } catch (exc) {
      show({ extra: [`Further hyperparameters: ${(exc as Error).message}`] });
      return;
    }
    setSending(true);
    setErrors({});
    try {
      const job = await api.submit(payload, crypto.randomUUID());
      navigate(`/jobs/${encodeURIComponent(job.id)}`);
    } catch (exc) {
      setSending(false);
      if (exc instanceof ApiError && exc.fieldErrors.length) show(placed(exc.fieldErrors, form.framework));
      else show({ form: [(exc as Error).message] });
    }
  }

  function show(found: Partial<Record<Field, string[]>>) {
    setErrors(found);
  }

  useEffect(() => {
    // Once the errors are on the page: focus the first field in error (the summary when none is named).
    if (!Object.keys(errors).length) return;
    const first = formRef.current?.querySelector<HTMLElement>("[aria-invalid='true']") ?? document.getElementById("submit-errors");
    first?.focus();
  }, [errors]);

  const err = (name: Field) => errors[name];
  const all = Object.entries(errors).flatMap(([field, messages]) => (messages ?? []).map((m) => ({ field, m })));

  return (
    <section>
      <h1>Submit a job</h1>
      {from && (
        <p className="notice">
          The settings of <Link href={`/jobs/${encodeURIComponent(from.id)}`}>{from.name ?? from.id}</Link>: change what you like, then submit.
        </p>
      )}
      {all.length > 0 && (
        <div className="error" id="submit-errors" tabIndex={-1} role="alert" data-testid="submit-errors">
          <strong>The API did not accept this job:</strong>
          <ul>
            {all.map(({ field, m }, i) => (
              <li key={i}>
                {field !== "form" ? <a href={`#f-${field}`}>{LABELS[field as keyof Form]}</a> : null}
                {field !== "form" ? ": " : ""}
                {m}
              </li>
            ))}
          </ul>
        </div>
      )}
      <form ref={formRef} onSubmit={submit} className="grid-form submit" noValidate>
        <Row field="framework" label="Framework" errors={err("framework")}>
          {(props) => (
            <select {...props} value={form.framework} onChange={(e) => setFramework(e.target.value as Framework)}>
              <option value="timm">timm (image classification)</option>
              <option value="ultralytics">Ultralytics YOLO</option>
            </select>
          )}
        </Row>
        <Row field="task" label="Task" errors={err("task")}>
          {(props) => (
            <select {...props} value={form.task} onChange={(e) => setTask(e.target.value)}>
              {TASKS[form.framework].map((t) => (
                <option key={t}>{t}</option>
              ))}
            </select>
          )}
        </Row>
        <Row field="model" label="Model" errors={err("model")} help={form.framework === "timm" ? "a timm model name" : "an Ultralytics model YAML that fits the task"}>
          {(props) => (
            <>
              <input {...props} type="text" list="models" value={form.model} onChange={(e) => set("model", e.target.value)} autoComplete="off" />
              <datalist id="models">
                {(MODELS[combo] ?? []).map((m) => (
                  <option key={m} value={m} />
                ))}
              </datalist>
            </>
          )}
        </Row>
        <Row field="dataset" label="Dataset" errors={err("dataset")} help={usable.length ? undefined : "no READY dataset fits this task yet"}>
          {(props) => (
            <select {...props} value={form.dataset} onChange={(e) => set("dataset", e.target.value)}>
              <option value="">{datasets.loading ? "loading…" : "choose a dataset"}</option>
              {usable.map((d) => (
                <option key={d.id} value={d.id}>
                  {d.name}:{d.version} ({d.format})
                </option>
              ))}
              {form.dataset && !usable.some((d) => d.id === form.dataset) && <option value={form.dataset}>{form.dataset}</option>}
            </select>
          )}
        </Row>
        <Row field="pool" label="Pool" errors={err("pool")}>
          {(props) => (
            <>
              <input {...props} type="text" list="pools" value={form.pool} onChange={(e) => set("pool", e.target.value)} autoComplete="off" />
              <datalist id="pools">
                {(pools.data?.items ?? []).map((p) => (
                  <option key={p.name} value={p.name} />
                ))}
              </datalist>
            </>
          )}
        </Row>
        <Row field="epochs" label="Epochs" errors={err("epochs")}>
          {(props) => <input {...props} type="text" inputMode="numeric" value={form.epochs} onChange={(e) => set("epochs", e.target.value)} />}
        </Row>
        <Row field="imgsz" label="Image size (px)" errors={err("imgsz")}>
          {(props) => <input {...props} type="text" inputMode="numeric" value={form.imgsz} onChange={(e) => set("imgsz", e.target.value)} />}
        </Row>
        <Row field="batch" label="Batch size" errors={err("batch")}>
          {(props) => <input {...props} type="text" inputMode="numeric" value={form.batch} onChange={(e) => set("batch", e.target.value)} />}
        </Row>
        <Row field="lr" label={form.framework === "timm" ? "Learning rate" : "Initial learning rate (lr0)"} errors={err("lr")} help={form.framework === "ultralytics" ? "empty: Ultralytics' default" : undefined}>
          {(props) => <input {...props} type="text" inputMode="decimal" value={form.lr} onChange={(e) => set("lr", e.target.value)} />}
        </Row>
        <Row
          field="extra"
          label="Further hyperparameters"
          errors={err("extra")}
          wide
          help={form.framework === "ultralytics" ? "name=value per line: optimizer=AdamW, mosaic=0.5, …" : "name=value per line (timm takes epochs, batch_size, image_size, learning_rate)"}
        >
          {(props) => <textarea {...props} rows={3} value={form.extra} onChange={(e) => set("extra", e.target.value)} spellCheck={false} />}
        </Row>
        <Row field="weights" label="Starting weights" errors={err("weights")} help="optional: an uploaded model's id, or job:<job id>/model.pt">
          {(props) => <input {...props} type="text" value={form.weights} onChange={(e) => set("weights", e.target.value)} autoComplete="off" />}
        </Row>
        <fieldset className={`field${err("export") ? " invalid" : ""}`} id="f-export" tabIndex={-1} aria-invalid={err("export") ? true : undefined} aria-describedby={err("export") ? "e-export" : undefined}>
          <legend>Export after training</legend>
          {["onnx", "torchscript"].map((format) => (
            <label key={format} className="inline">
              <input
                type="checkbox"
                checked={form.export.includes(format)}
                onChange={(e) => set("export", e.target.checked ? [...form.export, format] : form.export.filter((x) => x !== format))}
              />{" "}
              {format}
            </label>
          ))}
          {err("export") && (
            <p className="field-error" id="e-export">
              {err("export")!.join(" ")}
            </p>
          )}
        </fieldset>
        <Row field="max_attempts" label="Attempts at most" errors={err("max_attempts")}>
          {(props) => <input {...props} type="text" inputMode="numeric" value={form.max_attempts} onChange={(e) => set("max_attempts", e.target.value)} />}
        </Row>
        <Row field="name" label="Name" errors={err("name")} help="optional">
          {(props) => <input {...props} type="text" value={form.name} onChange={(e) => set("name", e.target.value)} maxLength={200} />}
        </Row>
        <div className="form-actions wide">
          <button type="submit" disabled={sending}>
            {sending ? "Submitting…" : "Submit job"}
          </button>
        </div>
      </form>
    </section>
  );
}

interface ControlProps {
  id: string;
  "aria-invalid"?: boolean;
  "aria-describedby"?: string;
}

function Row({
  field,
  label,
  errors,
  help,
  wide,
  children,
}: {
  field: keyof Form;
  label: string;
  errors?: string[];
  help?: string;
  wide?: boolean;
  children: (props: ControlProps) => ReactNode;
}) {
  const described = [help ? `h-${field}` : "", errors ? `e-${field}` : ""].filter(Boolean).join(" ");
  return (
    <div className={`field${errors ? " invalid" : ""}${wide ? " wide" : ""}`} data-field={field}>
      <label htmlFor={`f-${field}`}>{label}</label>
      {children({ id: `f-${field}`, "aria-invalid": errors ? true : undefined, "aria-describedby": described || undefined })}
      {help && (
        <p className="help" id={`h-${field}`}>
          {help}
        </p>
      )}
      {errors && (
        <p className="field-error" id={`e-${field}`}>
          {errors.join(" ")}
        </p>
      )}
    </div>
  );
}
