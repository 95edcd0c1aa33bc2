// Sign in with an API key: checked against the API, then kept in this tab's session storage. The field has
// no `name`, so even a form sent without JavaScript could not put the key into a URL.

import { useRef, useState, type FormEvent } from "react";
import { ApiError, request } from "../api";
import { signIn, takeSignOutMessage } from "../auth";

export function SignIn() {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(() => takeSignOutMessage());
  const [checking, setChecking] = useState(false);
  const input = useRef<HTMLInputElement>(null);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const value = key.trim();
    if (!value) {
      setError("Enter an API key.");
      input.current?.focus();
      return;
    }
    setChecking(true);
    setError(null);
    try {
      await request("/v1/jobs?limit=1", { key: value });
      signIn(value);
    } catch (exc) {
      const message =
        exc instanceof ApiError && exc.status === 401
          ? `The API refused this key: ${typeof exc.detail === "string" ? exc.detail : exc.code}.`
          : exc instanceof Error
            ? exc.message
            : String(exc);
      setError(message);
      setChecking(false);
      input.current?.focus();
    }
  }

  return (
    <main className="signin" id="main">
      <h1>Vision Training Platform</h1>
      <form onSubmit={submit} method="post" action="#" noValidate aria-describedby="signin-help">
        <label htmlFor="api-key">API key</label>
        <input
          id="api-key"
          ref={input}
          type="password"
          autoComplete="current-password"
          autoFocus
          value={key}
          onChange={(e) => setKey(e.target.value)}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? "signin-error" : undefined}
        />
        <p id="signin-help" className="help">
          <code>vtp up</code> writes the key of its default project to <code>.vtp/client.env</code> (
          <code>VTP_API_KEY</code>). It stays in this browser tab only.
        </p>
        {error && (
          <p id="signin-error" className="field-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={checking}>
          {checking ? "Checking…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
