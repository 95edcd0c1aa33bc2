"""moto's S3 server for the storage suite, behind a gate that checks presigned URLs as S3 does.

moto serves a presigned URL without checking its signature or its expiry, so on its own it would show
nothing about a URL's scope. The gate recomputes the SigV4 query signature (method, path, query, signed
headers) with the test credentials and answers S3's 403 to an expired URL, to one changed in any part, and to
a request that is not signed at all (the bucket is private). Requests signed in an `Authorization` header (the
backend's own) go to moto as they are.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from vtp.embedded.ports import free_port

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _encode(value: str) -> str:
    return quote(value, safe="-_.~")


def presigned_url_problem(environ: dict[str, Any], secrets: dict[str, str], now: datetime) -> str | None:
    """Why S3 would refuse this query-signed request (an S3 error code), or None."""
    path, _, query = environ["RAW_URI"].partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    params = dict(pairs)
    if "X-Amz-Signature" not in params:
        return "AccessDenied"
    access_key, date, region, service, _ = params["X-Amz-Credential"].split("/")
    if access_key not in secrets:
        return "InvalidAccessKeyId"
    signed_at = datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if now > signed_at + timedelta(seconds=int(params["X-Amz-Expires"])):
        return "AccessDenied"  # S3: "Request has expired"
    signed_headers = params["X-Amz-SignedHeaders"]
    headers = "".join(
        f"{name}:{environ.get('HTTP_' + name.upper().replace('-', '_'), '').strip()}\n"
        for name in signed_headers.split(";")
    )
    canonical_query = "&".join(
        f"{_encode(k)}={_encode(v)}" for k, v in sorted(pairs) if k != "X-Amz-Signature"
    )
    canonical_request = "\n".join(
        (environ["REQUEST_METHOD"], path, canonical_query, headers, signed_headers, "UNSIGNED-PAYLOAD")
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    digest = hashlib.sha256(canonical_request.encode()).hexdigest()
    string_to_sign = f"AWS4-HMAC-SHA256\n{params['X-Amz-Date']}\n{scope}\n{digest}"
    key = f"AWS4{secrets[access_key]}".encode()
    for part in (date, region, service, "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected, params["X-Amz-Signature"]) else "SignatureDoesNotMatch"


@dataclass
class PresignedUrlGate:
    app: WsgiApp
    secrets: dict[str, str]
    refused: list[str] = field(default_factory=list)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if "HTTP_AUTHORIZATION" not in environ:
            problem = presigned_url_problem(environ, self.secrets, datetime.now(UTC))
            if problem is not None:
                self.refused.append(problem)
                body = f"<Error><Code>{problem}</Code></Error>".encode()
                start_response("403 Forbidden", [("Content-Type", "application/xml")])
                return [body]
        return self.app(environ, start_response)


class MotoS3Server:
    """moto's server (as `moto.server.ThreadedMotoServer` runs it) on a free port, behind the gate."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.gate = PresignedUrlGate(DomainDispatcherApplication(create_backend_app), secrets)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
        self._server = make_server(
            "127.0.0.1", self.port, self.gate, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="moto-s3", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._thread.join()
