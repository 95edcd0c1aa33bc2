"""The tests' OTLP/HTTP receiver (tests/telemetry/otlp_receiver.py) in a process of its own, for the
benchmarks: decoding spans costs the measuring process nothing. It reports how many spans it received."""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized


def _serve(endpoint_out: Connection, spans: Synchronized[int]) -> None:
    from tests.telemetry.otlp_receiver import OtlpReceiver

    # Counting only: decoding every span into objects would cost the platform's shared cores.
    receiver = OtlpReceiver(keep=False).start()
    endpoint_out.send(receiver.endpoint)
    while True:
        spans.value = receiver.received
        time.sleep(0.5)


class ReceiverProcess:
    """`start()` it, point `OTEL_EXPORTER_OTLP_ENDPOINT` at `endpoint`, read `spans` at the end."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._spans = context.Value("q", 0)
        self._endpoint_in, endpoint_out = context.Pipe(duplex=False)
        self._process = context.Process(target=_serve, args=(endpoint_out, self._spans), daemon=True)
        self.endpoint = ""

    @property
    def spans(self) -> int:
        return int(self._spans.value)

    def start(self) -> None:
        self._process.start()
        self.endpoint = self._endpoint_in.recv()

    def stop(self) -> None:
        self._process.terminate()
        self._process.join(5)


def traces_to(endpoint: str) -> dict[str, str]:
    """The environment that has every part export every span to `endpoint`."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "always_on",
    }
