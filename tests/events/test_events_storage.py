"""Local-storage signed URLs served by the events service: one key, one method, until expiry."""

from __future__ import annotations

import time
import uuid
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from services.common.storage import UrlSigner


@pytest.fixture
def signer(events_service) -> UrlSigner:
    return UrlSigner(events_service.settings.storage_signing_key, events_service.url)


def key() -> str:
    return f"jobs/{uuid.uuid4().hex}/artifacts/blob.bin"


def flip(signature: str) -> str:
    return signature[:-1] + ("0" if signature[-1] != "0" else "1")


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return parts._replace(query="&".join(f"{k}={v}" for k, v in query.items())).geturl()


async def test_put_then_get_streams_the_object(signer):
    object_key, data = key(), bytes(range(256)) * 600

    async def chunks():
        for start in range(0, len(data), 10_000):
            yield data[start : start + 10_000]

    async with httpx.AsyncClient() as client:
        put = await client.put(signer.sign(object_key, "PUT", 60), content=chunks())  # chunked, no length
        assert put.status_code == 201
        assert put.json() == {"key": object_key, "size": len(data)}
        got = await client.get(signer.sign(object_key, "GET", 60))
        assert got.status_code == 200
        assert got.content == data
        assert got.headers["content-length"] == str(len(data))


async def test_refused_urls(signer, events_service):
    object_key, other_key = key(), key()
    async with httpx.AsyncClient() as client:
        assert (await client.put(signer.sign(object_key, "PUT", 60), content=b"x")).status_code == 201
        good = signer.sign(object_key, "GET", 60)
        signature = parse_qs(urlsplit(good).query)["signature"][0]
        refused = {
            "expired": signer.sign(object_key, "GET", 60, now=time.time() - 3600),
            "another key": good.replace(object_key, other_key),
            "wrong method (PUT URL used to GET)": signer.sign(object_key, "PUT", 60),
            "method swapped in the query": with_query(good, method="PUT"),
            "tampered signature": with_query(
                good, signature=signature[:-1] + ("0" if signature[-1] != "0" else "1")
            ),
            "extended expiry": with_query(good, expires=str(int(time.time()) + 10_000)),
            "another signing key": UrlSigner("another-secret", events_service.url).sign(
                object_key, "GET", 60
            ),
        }
        for case, url in refused.items():
            response = await client.get(url)
            assert response.status_code == 403, case
            assert response.json()["error"] == "forbidden", case
            assert signature not in response.text
        get_url_for_put = await client.put(good, content=b"overwrite")
        assert get_url_for_put.status_code == 403
        assert (await client.get(good)).content == b"x"
        missing = await client.get(good.replace(object_key, other_key).replace(signature, "0"))
        assert missing.status_code == 403


@pytest.mark.parametrize(
    "raw_path",
    [
        "/v1/storage/jobs/%2E%2E/%2E%2E/etc/passwd",
        "/v1/storage/jobs/x/..%2F..%2F..%2Fetc%2Fpasswd",
        "/v1/storage/%2Fetc%2Fpasswd",
        "/v1/storage/jobs//x",
    ],
)
async def test_traversal_keys_are_refused(events_service, raw_path):
    query = f"method=GET&expires={int(time.time()) + 60}&signature={'0' * 64}"
    async with httpx.AsyncClient(base_url=events_service.url) as client:
        # A raw URL, so neither httpx nor anything else normalises the dots away.
        response = await client.send(
            httpx.Request("GET", httpx.URL(f"{events_service.url}{raw_path}?{query}"))
        )
    assert response.status_code in (400, 404), response.text
    assert "root:" not in response.text


async def test_uploads_have_a_size_limit(signer, events_service):
    object_key = key()
    async with httpx.AsyncClient() as client:
        declared = await client.put(
            signer.sign(object_key, "PUT", 60), content=b"x" * (events_service.settings.max_upload_bytes + 1)
        )
        assert declared.status_code == 413

        async def chunks():
            for _ in range(events_service.settings.max_upload_bytes // 65536 + 2):
                yield b"y" * 65536

        streamed = await client.put(signer.sign(object_key, "PUT", 60), content=chunks())
        assert streamed.status_code == 413
        assert (await client.get(signer.sign(object_key, "GET", 60))).status_code == 404


async def test_an_upload_url_can_carry_a_size_limit_of_its_own(signer):
    object_key = key()
    url = signer.sign(object_key, "PUT", 60, max_bytes=100)
    async with httpx.AsyncClient() as client:
        assert (await client.put(url, content=b"x" * 101)).status_code == 413
        raised = with_query(url, max_bytes="1000000")
        assert (await client.put(raised, content=b"x" * 101)).status_code == 403
        dropped = url.replace("max_bytes=100&", "")
        assert (await client.put(dropped, content=b"x" * 101)).status_code == 403
        assert (await client.put(url, content=b"x" * 100)).status_code == 201
        assert (await client.get(signer.sign(object_key, "GET", 60))).content == b"x" * 100


DASHBOARD = "http://127.0.0.1:8000"


async def test_a_browser_may_use_signed_urls_from_another_origin(signer, events_service):
    """The dashboard PUTs an archive straight to storage: the preflight passes without a signature and the
    answers carry CORS headers. A signed GET answers as an attachment named for the key's last part."""
    object_key = key()
    put_url = signer.sign(object_key, "PUT", 60)
    preflight = {
        "Origin": DASHBOARD,
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type",
    }
    async with httpx.AsyncClient() as client:
        allowed = await client.options(put_url, headers=preflight)
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["access-control-allow-origin"] == "*"
        methods = {method.strip() for method in allowed.headers["access-control-allow-methods"].split(",")}
        assert methods >= {"GET", "PUT"}
        assert "content-type" in allowed.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in allowed.headers
        # Without its signature too: the preflight carries none, and it opens nothing.
        bare = await client.options(f"{events_service.url}/v1/storage/{object_key}", headers=preflight)
        assert bare.status_code == 200
        assert not (events_service.settings.storage_dir / object_key).exists()
        refused = await client.options(
            put_url, headers={**preflight, "Access-Control-Request-Method": "DELETE"}
        )
        assert refused.status_code == 400
        # A plain OPTIONS is no preflight: the route has no such method.
        assert (await client.options(put_url)).status_code == 405

        headers = {"Origin": DASHBOARD, "Content-Type": "application/zip"}
        put = await client.put(put_url, content=b"archive", headers=headers)
        assert put.status_code == 201
        assert put.headers["access-control-allow-origin"] == "*"
        got = await client.get(signer.sign(object_key, "GET", 60), headers={"Origin": DASHBOARD})
        assert got.content == b"archive"
        assert got.headers["content-disposition"] == 'attachment; filename="blob.bin"'
        assert got.headers["access-control-allow-origin"] == "*"
        # Refusals carry them too, so that the page can read why.
        forbidden = await client.put(with_query(put_url, signature="0" * 64), content=b"x", headers=headers)
        assert forbidden.status_code == 403
        assert forbidden.headers["access-control-allow-origin"] == "*"


async def test_callbacks_answer_no_origin(events_service):
    """Callbacks are for trainers (bearer tokens), never browsers: no preflight passes, nothing is marked."""
    async with httpx.AsyncClient(base_url=events_service.url) as client:
        preflight = await client.options(
            "/v1/callbacks/heartbeat",
            headers={
                "Origin": DASHBOARD,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 401
        assert not any(name.startswith("access-control-") for name in preflight.headers)
        token = events_service.token(uuid.uuid4().hex)
        answer = await client.post(
            "/v1/callbacks/heartbeat",
            json={},
            headers={"Origin": DASHBOARD, "Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200
        assert not any(name.startswith("access-control-") for name in answer.headers)
