"""Consumer lag as KEDA's `nats-jetstream` scaler reads it (KEDA v2.20, pkg/scalers/nats_jetstream_scaler.go):
GET `<monitor>/jsz?acc=<account>&consumers=true&config=true`, find the stream and consumer by name,
lag = `num_pending + num_ack_pending`. The local pool scales on exactly this number, as KEDA would."""

from __future__ import annotations

from typing import Any

import httpx

DEFAULT_ACCOUNT = "$G"


class ConsumerNotFound(Exception):
    pass


def jsz_url(monitor_url: str) -> str:
    return f"{monitor_url.rstrip('/')}/jsz"


def consumer_lag(jsz: dict[str, Any], stream: str, consumer: str, account: str = DEFAULT_ACCOUNT) -> int:
    """Pure: the lag of `stream`/`consumer` in a `/jsz` answer."""
    for details in jsz.get("account_details") or []:
        if details.get("name") != account and details.get("id") != account:
            continue
        for stream_detail in details.get("stream_detail") or []:
            if stream_detail.get("name") != stream:
                continue
            for consumer_detail in stream_detail.get("consumer_detail") or []:
                if consumer_detail.get("name") == consumer:
                    return int(consumer_detail.get("num_pending", 0)) + int(
                        consumer_detail.get("num_ack_pending", 0)
                    )
    raise ConsumerNotFound(f"no consumer {consumer!r} on stream {stream!r} in account {account!r}")


def read_lag(
    client: httpx.Client, monitor_url: str, stream: str, consumer: str, account: str = DEFAULT_ACCOUNT
) -> int:
    response = client.get(
        jsz_url(monitor_url), params={"acc": account, "consumers": "true", "config": "true"}, timeout=5.0
    )
    response.raise_for_status()
    return consumer_lag(response.json(), stream, consumer, account)
