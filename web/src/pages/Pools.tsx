// Pools: waiting and running jobs and runners per declared pool, read again every few seconds.

import { api } from "../api";
import { duration, time } from "../format";
import { useInterval, useResource, useTitle } from "../hooks";
import { Link } from "../router";
import { Empty, ErrorBox, Loading } from "../components/States";

const EVERY_MS = 5000;

export function PoolsPage() {
  useTitle("Pools");
  const pools = useResource((signal) => api.pools(signal), []);
  useInterval(pools.reload, EVERY_MS);
  return (
    <section>
      <div className="title-row">
        <h1>Pools</h1>
        <span className="muted small" role="status">
          {pools.loading && pools.data ? "refreshing…" : `read again every ${EVERY_MS / 1000} s`}
        </span>
      </div>
      <p className="muted">Counts cover every project's jobs: a pool's queue is shared.</p>
      {pools.loading && !pools.data && <Loading what="pools" />}
      {pools.error && <ErrorBox error={pools.error} retry={pools.reload} />}
      {pools.data && pools.data.items.length === 0 && <Empty>No pool is declared. `vtp up` declares the local pool; `vtp pools prepare NAME` others.</Empty>}
      {pools.data && pools.data.items.length > 0 && (
        <table className="responsive pools">
          <thead>
            <tr>
              <th scope="col">Pool</th>
              <th scope="col">Waiting jobs</th>
              <th scope="col">Running jobs</th>
              <th scope="col">Runners waiting</th>
              <th scope="col">Dispatches held</th>
              <th scope="col">Oldest waiting</th>
              <th scope="col">Last job taken</th>
            </tr>
          </thead>
          <tbody>
            {pools.data.items.map((pool) => (
              <tr key={pool.name} data-pool={pool.name}>
                <th scope="row" data-label="Pool">
                  <Link href={`/?pool=${encodeURIComponent(pool.name)}`}>{pool.name}</Link>
                </th>
                <td data-label="Waiting jobs">{pool.waiting}</td>
                <td data-label="Running jobs">{pool.running}</td>
                <td data-label="Runners waiting">{pool.runners_waiting}</td>
                <td data-label="Dispatches held">{pool.dispatches_held}</td>
                <td data-label="Oldest waiting">{pool.oldest_waiting_seconds == null ? "–" : duration(pool.oldest_waiting_seconds)}</td>
                <td data-label="Last job taken">{time(pool.last_taken_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
