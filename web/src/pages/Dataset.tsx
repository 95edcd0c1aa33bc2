// One dataset version by id, `name:version` or `name`.

import { api, type Dataset } from "../api";
import { useResource, useTitle } from "../hooks";
import { Link } from "../router";
import { DatasetView, useValidated } from "../components/DatasetView";
import { ErrorBox, Loading } from "../components/States";

export function DatasetPage({ reference }: { reference: string }) {
  useTitle(`Dataset ${reference}`);
  const dataset = useResource((signal) => api.dataset(reference, signal), [reference]);
  return (
    <section>
      <p>
        <Link href="/datasets">← All datasets</Link>
      </p>
      {dataset.loading && !dataset.data && <Loading what="the dataset" />}
      {dataset.error && <ErrorBox error={dataset.error} retry={dataset.reload} />}
      {dataset.data && <Followed dataset={dataset.data} />}
    </section>
  );
}

function Followed({ dataset }: { dataset: Dataset }) {
  const { dataset: current, note } = useValidated(dataset);
  return <DatasetView dataset={current} note={note} />;
}
