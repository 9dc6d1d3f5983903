"""Bounded requests: bodies refused (413) as they arrive, workbooks by what they unpack to and hold, targets files by nesting.

Each refusal names its setting. The streaming checks run against a real
uvicorn server on the loopback, as a web worker gets its bodies: in chunks.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import httpx
import openpyxl
import pytest
import uvicorn

from api.errors import PayloadTooLarge
from api.limits import BodySizeLimit, JsonDepthLimit
from api.main import create_app
from api.services.uploads import UploadLimits, _check_workbook
from geoplan.errors import ConfigError
from geoplan.targets import presets
from tests.api.conftest import assert_error, bearer
from tests.test_excel_rows import padded, recorded_as, rewrite_sheet, workbook

CHUNK = b"[]," * 20_000  # 60 kB
BIG_CHUNKS = 1_000  # 60 MB, as the tester's body


def _unchanged(client, scenario) -> None:
    assert client.get(f"/scenarios/{scenario['id']}").json()["spec_hash"] == scenario["spec_hash"]


def _post_file(client, scenario, filename: str, content: bytes):
    return client.post(f"/scenarios/{scenario['id']}/facilities", files={"file": (filename, content)})


# --- request bodies (GEOPLAN_MAX_BODY_BYTES) -------------------------------------------------------


def test_a_json_body_over_the_limit_is_refused(client, api_settings):
    assert api_settings.max_body_bytes == 2_000_000
    body = b'{"region":"wuchang","name":"x","closed":[' + CHUNK * 40 + b"[]]}"  # 2.4 MB, nested 3 deep
    response = client.post("/scenarios", content=body, headers={"content-type": "application/json"})
    assert_error(response, 413, f"{len(body):,} bytes", "2,000,000", "GEOPLAN_MAX_BODY_BYTES")


class _Body:
    """An ASGI ``receive`` handing out ``chunks`` copies of ``chunk``, counting those taken."""

    def __init__(self, chunk: bytes, chunks: int):
        self.chunk, self.chunks, self.taken = chunk, chunks, 0

    async def __call__(self) -> dict:
        if self.taken >= self.chunks:
            return {"type": "http.disconnect"}
        self.taken += 1
        return {"type": "http.request", "body": self.chunk, "more_body": self.taken < self.chunks}


async def _reads_all(scope, receive, send) -> None:
    """An application that reads the whole body, then answers 201."""
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _call(app, headers: list[tuple[bytes, bytes]], body: _Body) -> list[dict]:
    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/scenarios", "headers": headers}
    asyncio.run(app(scope, body, send))
    return sent


def test_a_chunked_body_stops_being_read_at_the_limit():
    app = BodySizeLimit(JsonDepthLimit(_reads_all), body_bytes=1_000_000)
    body = _Body(CHUNK, BIG_CHUNKS)
    sent = _call(app, [(b"content-type", b"application/json")], body)
    assert sent[0]["status"] == 413 and len(sent) == 2  # the application's own answer never goes out
    assert b"more than 1,000,000 bytes" in sent[1]["body"] and b"GEOPLAN_MAX_BODY_BYTES" in sent[1]["body"]
    assert body.taken == 1_000_000 // len(CHUNK) + 1


def test_a_declared_length_over_the_limit_is_refused_unread():
    app = BodySizeLimit(_reads_all, body_bytes=1_000_000, upload_bytes=5_000_000)
    for content_type, words in ((b"application/json", b"GEOPLAN_MAX_BODY_BYTES"), (b"multipart/form-data; boundary=x", b"GEOPLAN_MAX_UPLOAD_BYTES")):
        body = _Body(CHUNK, BIG_CHUNKS)
        sent = _call(app, [(b"content-type", content_type), (b"content-length", b"60000000")], body)
        assert sent[0]["status"] == 413 and b"60,000,000 bytes" in sent[1]["body"] and words in sent[1]["body"]
        assert (b"connection", b"close") in sent[0]["headers"]
        assert body.taken == 0


def test_bodies_within_the_limits_pass_whole():
    app = BodySizeLimit(_reads_all, body_bytes=1_000_000, upload_bytes=1_000_000)
    body = _Body(CHUNK, 16)
    assert _call(app, [(b"content-type", b"application/json")], body)[0]["status"] == 201 and body.taken == 16
    body = _Body(CHUNK, 17)  # a multipart body may pass the file's limit by its form's allowance
    assert _call(app, [(b"content-type", b"multipart/form-data; boundary=x")], body)[0]["status"] == 201


@pytest.fixture(scope="module")
def served(api_settings, api_keys, wuchang) -> Iterator[httpx.Client]:
    """The service under uvicorn on the loopback (a free port, no job threads), as a planner of team-a."""
    app = create_app(api_settings.model_copy(update={"job_threads": 0}), preloaded={"wuchang": wuchang})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=bearer(api_keys["planner"]), timeout=60) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class _Stream:
    """A chunked request body: ``head``, ``chunks`` copies of ``chunk``, then ``tail``; counts the bytes handed out."""

    def __init__(self, head: bytes, chunk: bytes, chunks: int, tail: bytes = b""):
        self.head, self.chunk, self.chunks, self.tail, self.sent = head, chunk, chunks, tail, 0

    def __iter__(self) -> Iterator[bytes]:
        for part in (self.head, *(self.chunk for _ in range(self.chunks)), self.tail):
            self.sent += len(part)
            yield part


def test_a_large_json_body_is_refused_by_a_real_server_as_it_streams(served):
    stream = _Stream(b'{"region":"wuchang","name":"x","closed":[', CHUNK, BIG_CHUNKS, b"[]]}")
    response = served.post("/scenarios", content=iter(stream), headers={"content-type": "application/json"})
    assert_error(response, 413, "more than 2,000,000 bytes", "GEOPLAN_MAX_BODY_BYTES")
    assert stream.sent < 20_000_000  # the client stopped: the worker read no further than the limit and its buffers
    body = b'{"region":"wuchang","name":"x","closed":[' + CHUNK * BIG_CHUNKS + b"[]]}"  # the tester's body, its length declared
    assert_error(served.post("/scenarios", content=body, headers={"content-type": "application/json"}), 413, f"{len(body):,} bytes")
    assert served.get("/health").json()["status"] == "ok"


def test_a_large_upload_is_refused_by_a_real_server_as_it_streams(served, api_settings):
    scenario = served.post("/scenarios", json={"region": "wuchang", "name": "stream"}).json()
    head = (b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
            b"Content-Type: text/csv\r\n\r\nid,lng,lat\r\n")
    stream = _Stream(head, b"1,114.307,30.5607\r\n" * 3_000, 1_000, b"\r\n--b0undary--\r\n")  # 57 MB
    response = served.post(f"/scenarios/{scenario['id']}/facilities", content=iter(stream),
                           headers={"content-type": "multipart/form-data; boundary=b0undary"})
    assert_error(response, 413, f"more than {api_settings.max_upload_bytes + 64_000:,} bytes", "GEOPLAN_MAX_UPLOAD_BYTES")
    assert stream.sent < 25_000_000
    _unchanged(served, scenario)


def test_the_body_limit_is_a_setting():
    from api.settings import Settings

    assert Settings.from_env({"GEOPLAN_MAX_BODY_BYTES": "500000"}).max_body_bytes == 500_000
    assert ("GEOPLAN_MAX_BODY_BYTES", "2000000") in [(var, value) for var, value, _ in Settings().table()]


# --- workbooks: what they unpack to, and the rows they hold ----------------------------------------


@pytest.mark.parametrize("filename", ["bomb.xlsx", "bomb.xls"])
def test_a_padded_workbook_is_refused_before_it_is_opened(client, scenario, tmp_path, monkeypatch, filename):
    content = rewrite_sheet(workbook(tmp_path / "bomb.xlsx", 3), padded(50_000_000)).read_bytes()
    assert len(content) < 200_000
    opened = []
    monkeypatch.setattr(openpyxl, "load_workbook", lambda *a, **k: opened.append(a))
    started = time.monotonic()
    assert_error(_post_file(client, scenario, filename, content), 413, filename, "packs a part", "save it again")
    assert not opened and time.monotonic() - started < 2.0
    _unchanged(client, scenario)


def test_a_workbook_unpacking_to_more_than_its_share_of_the_upload_limit_is_refused(client, api_settings, tmp_path):
    assert client.app.state.services.uploads.limits.unpacked_bytes == 20 * api_settings.max_upload_bytes
    path = workbook(tmp_path / "list.xlsx", 50)
    with pytest.raises(PayloadTooLarge, match=r"'list\.xlsx' unpacks to [\d,]+ bytes; an Excel upload may unpack to 1,000 "
                                              r"\(20 times GEOPLAN_MAX_UPLOAD_BYTES\)"):
        _check_workbook("list.xlsx", path, UploadLimits(unpacked_bytes=1_000))
    _check_workbook("list.xlsx", path, UploadLimits())


@pytest.mark.parametrize("ref", ["A1:C3", "A1"])
def test_rows_past_a_stale_recorded_size_are_uploaded(client, scenario, tmp_path, ref):
    content = rewrite_sheet(workbook(tmp_path / "stale.xlsx", 10), recorded_as(ref)).read_bytes()
    response = _post_file(client, scenario, "stale.xlsx", content)
    assert response.status_code == 200, response.text
    assert response.json()["count"] == 10 and response.json()["site_ids"][-1] == "S9"


def test_rows_over_the_limit_are_counted_not_taken_from_the_recorded_size(client, scenario, api_settings, tmp_path):
    content = rewrite_sheet(workbook(tmp_path / "many.xlsx", 30_000), recorded_as("A1:C3")).read_bytes()
    response = _post_file(client, scenario, "many.xlsx", content)
    assert_error(response, 413, f"more than {api_settings.max_upload_rows:,} rows", "GEOPLAN_MAX_UPLOAD_ROWS")
    _unchanged(client, scenario)


def test_columns_over_the_limit_are_counted_not_taken_from_the_recorded_size(client, scenario, api_settings, tmp_path):
    book = openpyxl.Workbook()
    book.active.append(["id", "lng", "lat"])
    book.active.append(["S1", 114.307, 30.5607, *range(api_settings.max_upload_columns)])
    book.save(tmp_path / "wide.xlsx")
    content = rewrite_sheet(tmp_path / "wide.xlsx", recorded_as("A1:C2")).read_bytes()
    response = _post_file(client, scenario, "wide.xlsx", content)
    assert_error(response, 413, f"{api_settings.max_upload_columns + 3:,} columns", "GEOPLAN_MAX_UPLOAD_COLUMNS")


# --- targets files nested too deep -----------------------------------------------------------------


@pytest.mark.parametrize("text", ["a = " + "[" * 5_000 + "]" * 5_000 + "\n", "a = " + "{b = " * 3_000 + "1" + "}" * 3_000 + "\n"])
def test_a_deeply_nested_targets_file_is_a_422(client, text):
    response = client.post("/regions/wuchang/targets", files={"file": ("deep.toml", text.encode(), "application/toml")})
    assert_error(response, 422, "deep.toml", "nests brackets", "levels deep", "the limit is 32", "[[targets]]")


def test_nesting_past_what_the_scan_sees_is_a_config_error_too(monkeypatch):
    monkeypatch.setattr(presets, "_toml_depth", lambda text: 0)
    with pytest.raises(ConfigError, match=r"deep\.toml nests brackets too deep for the TOML parser"):
        presets.loads_targets("a = " + "[" * 5_000 + "]" * 5_000, name="deep.toml")


def test_brackets_in_strings_and_comments_do_not_count_and_the_presets_pass():
    quoted = '[plan]\nname = "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["  # ]]]]\n'
    with pytest.raises(ConfigError, match="no targets"):
        presets.loads_targets(quoted + "note = '{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{'\n", name="q.toml")
    for name in presets.available_presets():
        assert presets.load_targets(name).targets


def test_a_targets_text_too_long_is_refused_before_parsing():
    with pytest.raises(ConfigError, match=r"holds 1,000,001 characters; a targets file is a few kB"):
        presets.loads_targets("#" * 1_000_001, name="long.toml")
