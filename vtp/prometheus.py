"""Where the local platform's metrics are: `vtp up` writes `<data-dir>/prometheus/targets.json` (Prometheus'
`file_sd` format, one target per part with its `job` label) and `prometheus.yml`, which scrapes them and
loads the alert rules, so `prometheus --config.file=<data-dir>/prometheus/prometheus.yml` shows the
platform at once (observability/README.md)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import yaml

# observability/ of the source tree this package runs from (an installed wheel has none: no rules then).
ALERT_RULES = Path(__file__).resolve().parent.parent / "observability" / "prometheus" / "alerts.yaml"
SCRAPE_INTERVAL = "5s"


def write_config(data_dir: Path, ports: Mapping[str, int], rules: Path = ALERT_RULES) -> Path:
    """Write targets.json for `ports` ({part: port} on 127.0.0.1; job `vtp-<part>`) and prometheus.yml;
    return the latter's path."""
    folder = data_dir / "prometheus"
    folder.mkdir(parents=True, exist_ok=True)
    targets = [
        {"targets": [f"127.0.0.1:{port}"], "labels": {"job": f"vtp-{part}"}} for part, port in ports.items()
    ]
    targets_file = folder / "targets.json"
    targets_file.write_text(json.dumps(targets, indent=2) + "\n")
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(rules)] if rules.is_file() else [],
        "scrape_configs": [
            {
                # Each target's own `job` label (vtp-api, vtp-scheduler, ...) replaces this name.
                "job_name": "vtp",
                "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "30s"}],
            }
        ],
    }
    config_file = folder / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    return config_file
