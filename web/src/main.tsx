import { StrictMode, useEffect, useRef, useSyncExternalStore } from "react";
import { createRoot } from "react-dom/client";
import { getKey, onAuthChange, signOut } from "./auth";
import { Link, match, useLocation } from "./router";
import { SignIn } from "./pages/SignIn";
import { JobsPage } from "./pages/Jobs";
import { JobPage } from "./pages/Job";
import { ComparePage } from "./pages/Compare";
import { DatasetsPage } from "./pages/Datasets";
import { DatasetPage } from "./pages/Dataset";
import { SubmitPage } from "./pages/Submit";
import { PoolsPage } from "./pages/Pools";
import "./styles.css";

const NAV = [
  { href: "/", label: "Jobs", active: (p: string) => p === "/" || p.startsWith("/jobs") },
  { href: "/submit", label: "Submit", active: (p: string) => p.startsWith("/submit") },
  { href: "/compare", label: "Compare", active: (p: string) => p.startsWith("/compare") },
  { href: "/datasets", label: "Datasets", active: (p: string) => p.startsWith("/datasets") },
  { href: "/pools", label: "Pools", active: (p: string) => p.startsWith("/pools") },
];

function Page({ path, query }: { path: string; query: URLSearchParams }) {
  let params: Record<string, string> | null;
  if (path === "/" || path === "/jobs") return <JobsPage query={query} />;
  if ((params = match("/jobs/:id", path))) return <JobPage key={params.id} id={params.id!} />;
  if (path === "/compare") return <ComparePage query={query} />;
  if (path === "/datasets") return <DatasetsPage />;
  if ((params = match("/datasets/:ref", path))) return <DatasetPage key={params.ref} reference={params.ref!} />;
  if (path === "/submit") return <SubmitPage key={query.get("from") ?? ""} from={query.get("from")} />;
  if (path === "/pools") return <PoolsPage />;
  return (
    <section>
      <h1>Not found</h1>
      <p>
        There is no page at <code>{path}</code>. <Link href="/">Back to the jobs</Link>.
      </p>
    </section>
  );
}

function App() {
  const key = useSyncExternalStore(onAuthChange, getKey);
  const { path, query } = useLocation();
  const main = useRef<HTMLElement>(null);
  const first = useRef(true);

  useEffect(() => {
    // After a navigation (not the first load), keyboard and screen reader users start at the new page.
    if (first.current) first.current = false;
    else main.current?.focus({ preventScroll: true });
  }, [path]);

  if (!key) return <SignIn />;
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <Link href="/" className="brand">
          VTP
        </Link>
        <nav aria-label="Main">
          <ul>
            {NAV.map((item) => (
              <li key={item.href}>
                <Link href={item.href} aria-current={item.active(path) ? "page" : undefined}>
                  {item.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <button type="button" className="secondary small signout" onClick={() => signOut()}>
          Sign out
        </button>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        <Page path={path} query={query} />
      </main>
    </>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
