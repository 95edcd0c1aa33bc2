"""The PromQL that observability/ runs (alert rules, Grafana dashboards) and the platform metrics it names, so
that a test can hold them against what the parts export: a renamed metric must break a test, not a panel.

Names are returned as written: a histogram appears as `X_bucket`, `X_count` or `X_sum`, which a caller
accepts where `X` is exported as a histogram.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

OBSERVABILITY = Path(__file__).resolve().parents[2] / "observability"
ALERT_RULES = OBSERVABILITY / "prometheus" / "alerts.yaml"
DASHBOARDS = OBSERVABILITY / "grafana" / "dashboards"

# A metric name starting `vtp_`, not the tail of a longer identifier.
_PLATFORM_METRIC = re.compile(r"(?<![A-Za-z0-9_:])vtp_[A-Za-z0-9_:]*")
# Grafana's `label_values(metric, label)` variable queries: not PromQL, but they name a metric too.
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*)\)\s*$", re.DOTALL)


def alert_expressions() -> dict[str, str]:
    """Alert name -> its PromQL expression."""
    groups = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"] if "alert" in rule}


def dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard, for every dashboard Grafana is provisioned with."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _is_prometheus(target: dict[str, Any], panel: dict[str, Any]) -> bool:
    source = target.get("datasource") or panel.get("datasource") or {}
    return isinstance(source, dict) and source.get("type") == "prometheus"


def dashboard_expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every Prometheus query of every dashboard: panel targets, and the metric of each
    `label_values` variable query (as a bare selector)."""
    found = []
    for name, board in dashboards().items():
        for panel in panels(board):
            for target in panel.get("targets", []):
                if _is_prometheus(target, panel) and target.get("expr"):
                    found.append((f"{name}: {panel.get('title')} ({target['refId']})", target["expr"]))
        for variable in board.get("templating", {}).get("list", []):
            if variable.get("type") != "query":
                continue
            query = variable.get("query")
            text = query.get("query", "") if isinstance(query, dict) else query or ""
            match = _LABEL_VALUES.match(text)
            if match and "," in match.group(1):
                found.append((f"{name}: variable {variable['name']}", match.group(1).rsplit(",", 1)[0]))
            elif text:
                found.append((f"{name}: variable {variable['name']}", text))
    return found


def platform_metrics_in(expression: str) -> set[str]:
    return set(_PLATFORM_METRIC.findall(expression))


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_GROUPINGS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![A-Za-z0-9_:$])[A-Za-z_:][A-Za-z0-9_:]*(?![A-Za-z0-9_:]|\s*\()")
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
             "offset", "inf", "nan"}  # fmt: skip


def metrics_in(expression: str) -> set[str]:
    """Every metric a PromQL expression selects, of any name: what is left once strings, label matchers,
    groupings, ranges, function names and keywords are taken out."""
    text = _STRINGS.sub('""', expression)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = _GROUPINGS.sub(" ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}


def metric_names_used() -> set[str]:
    """Every `vtp_*` metric an alert rule or a dashboard names, as written (`X_bucket` for histogram X)."""
    expressions = [*alert_expressions().values(), *(expr for _, expr in dashboard_expressions())]
    return set().union(*(platform_metrics_in(expr) for expr in expressions))
