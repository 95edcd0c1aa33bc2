// The API key lives in this tab's session storage only: never in a URL, a cookie or local storage, so it
// leaves with the tab and is never written to a server log or the browser's history.

const STORAGE_KEY = "vtp.apiKey";
const listeners = new Set<() => void>();
let refusedMessage: string | null = null;

export function getKey(): string | null {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

export function signIn(key: string): void {
  sessionStorage.setItem(STORAGE_KEY, key);
  refusedMessage = null;
  listeners.forEach((listener) => listener());
}

export function signOut(message: string | null = null): void {
  sessionStorage.removeItem(STORAGE_KEY);
  refusedMessage = message;
  listeners.forEach((listener) => listener());
}

/** Why the last session ended (a key the API refused), shown on the sign-in page once. */
export function takeSignOutMessage(): string | null {
  const message = refusedMessage;
  refusedMessage = null;
  return message;
}

export function onAuthChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
