"""The workspace's page and assets at /app (open, offline), its strings in both languages, and its two reads."""

from __future__ import annotations

import gzip
import io
import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from api.store import Store
from tests.api.conftest import SAMPLE_FACILITIES, bearer, upload

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "api" / "workspace"


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    db = tmp_path_factory.mktemp("workspace") / "geoplan.sqlite3"
    store = Store(db)
    made = {role: store.create_key(role=role, team="t", name=role)[1] for role in ("viewer", "planner")}
    store.close()
    return db, made


@pytest.fixture(scope="module")
def bare(keys):
    """The app without any region loaded: enough for the page and its assets."""
    settings = Settings(db_path=keys[0], regions=("wuchang",), job_threads=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def client(keys, wuchang, cache_dir):
    settings = Settings(db_path=keys[0], cache_dir=cache_dir, regions=("wuchang",), job_threads=0)
    with TestClient(create_app(settings, preloaded={"wuchang": wuchang}), raise_server_exceptions=False,
                    headers=bearer(keys[1]["planner"])) as test_client:
        yield test_client


# --- the page ------------------------------------------------------------------------------


def test_the_page_loads_without_a_key_and_only_from_the_service(bare):
    assert bare.get("/app", follow_redirects=False).headers["location"] == "app/"
    page = bare.get("/app/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "style-src 'self'" in policy and "unsafe" not in policy
    # every script, stylesheet and module the page names is served here, nothing from elsewhere
    html = page.text
    linked = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert linked and not [u for u in linked if re.match(r"(https?:)?//", u)]
    for url in linked:
        if url.startswith("data:"):
            continue
        answer = bare.get(f"/app/{url}")
        assert answer.status_code == 200, url
    assert bare.get("/app/static/leaflet/leaflet.js").headers["content-type"].startswith("text/javascript")
    for module in PAGE.glob("js/*.js"):
        text = module.read_text(encoding="utf-8")
        assert not re.search(r"https?://", text), f"{module.name} names a web address"
        for imported in re.findall(r"from '\./([\w.]+)'", text):
            assert bare.get(f"/app/js/{imported}").status_code == 200, imported
    assert bare.get("/app/js/main.js").headers["content-type"].startswith("text/javascript")


@pytest.mark.parametrize("path", ["/app/../api/main.py", "/app/js/../../routers/workspace.py", "/app/%2e%2e/routers/workspace.py",
                                  "/app/static/leaflet/%2e%2e/README.md", "/app/.hidden.js", "/app/js/nothing.js", "/app/index.py"])
def test_nothing_outside_the_workspace_is_served(bare, path):
    answer = bare.get(path)  # (a client that resolves ../ itself asks for a path outside /app: a key is needed there)
    assert answer.status_code in (401, 404) and answer.json()["error"] in ("not_found", "unauthorized")


def test_the_static_routes_are_not_in_the_api_schema(bare):
    paths = bare.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/app")]
    assert "/regions/{region}/streets" in paths and "/regions/{region}/targets/workbook" in paths


def test_every_string_is_in_chinese_and_english():
    tables = {lang: json.loads((PAGE / "i18n" / f"{lang}.json").read_text(encoding="utf-8")) for lang in ("zh", "en")}
    assert set(tables["zh"]) == set(tables["en"])
    assert all(v.strip() for table in tables.values() for v in table.values())
    html = (PAGE / "index.html").read_text(encoding="utf-8")
    scripts = "\n".join(p.read_text(encoding="utf-8") for p in PAGE.glob("js/*.js"))
    used = set(re.findall(r'data-i18n(?:-placeholder|-title)?="([^"]+)"', html)) | set(re.findall(r"\bt\('([\w.]+)'", scripts))
    used |= {"layer." + name for name in re.findall(r"'layer\.(\w+)'", scripts)}
    assert used and not used - set(tables["zh"])
    # keys built from the service's values: each value the service gives has its string
    for prefix, values in {"kind": ("station", "canteen", "centre", "district_centre", "home"), "role": ("viewer", "planner", "admin"),
                           "job": ("queued", "running", "succeeded", "failed"), "coverage.source": ("facilities", "candidates", "scenario"),
                           "source": ("region", "upload"), "review": ("pass", "fail", "unknown"), "group": ("pop_60", "pop_80"),
                           "legend": ("existing", "canteen", "added", "closed", "candidate")}.items():
        assert all(f"{prefix}.{v}" in tables["zh"] for v in values), prefix
    # placeholders agree between the languages
    for name, text in tables["zh"].items():
        assert set(re.findall(r"\{(\w+)\}", text)) == set(re.findall(r"\{(\w+)\}", tables["en"][name])), name


# --- streets -------------------------------------------------------------------------------


def test_streets_need_a_key_and_are_the_region_network(client, keys, wuchang):
    assert client.get("/regions/wuchang/streets", headers={"Authorization": ""}).status_code == 401
    answer = client.get("/regions/wuchang/streets", headers=bearer(keys[1]["viewer"]))
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    streets = answer.json()
    assert streets["type"] == "FeatureCollection" and streets["region"] == "wuchang"
    assert sorted(f["properties"]["class"] for f in streets["features"]) == ["major", "street"]
    assert {f["geometry"]["type"] for f in streets["features"]} <= {"MultiLineString", "LineString"}
    west, south, east, north = wuchang.boundary.to_crs(4326).total_bounds
    coords = [c for f in streets["features"] for line in f["geometry"]["coordinates"] for c in line]
    lons, lats = [c[0] for c in coords], [c[1] for c in coords]
    assert west - 0.02 < min(lons) < west + 0.01 and east - 0.01 < max(lons) < east + 0.02
    assert south - 0.02 < min(lats) and max(lats) < north + 0.02
    assert client.get("/regions/nowhere/streets").status_code == 404


def test_streets_are_sent_compressed_when_asked(client):
    packed = client.get("/regions/wuchang/streets", headers={"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip"
    plain = client.get("/regions/wuchang/streets", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert packed.json() == plain.json() and len(gzip.compress(plain.content)) < len(plain.content) / 2


# --- the review workbook -------------------------------------------------------------------


def test_the_workbook_is_the_reviews_and_viewers_may_download_it(client, keys):
    from openpyxl import load_workbook

    answer = client.get("/regions/wuchang/targets/workbook", params={"preset": "shuimogou"}, headers=bearer(keys[1]["viewer"]))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    assert answer.headers["content-disposition"] == 'attachment; filename="wuchang_shuimogou_review.xlsx"'
    book = load_workbook(io.BytesIO(answer.content), read_only=True)
    assert book.sheetnames[:4] == ["summary 摘要", "approximate zones 近似片区", "communities 社区", "consolidation 撤并"]
    review = client.get("/regions/wuchang/targets", params={"preset": "shuimogou"}).json()
    summary = list(book["summary 摘要"].iter_rows(values_only=True))
    assert len(summary) == len(review["summary"]) + 1  # a header row and one row per indicator, as the JSON review


def test_a_scenarios_workbook_counts_its_facilities(client):
    from openpyxl import load_workbook

    scenario = client.post("/scenarios", json={"region": "wuchang", "name": "workbook"}).json()
    upload(client, scenario["id"], SAMPLE_FACILITIES.read_bytes(), coord_system="gcj02")
    answer = client.get("/regions/wuchang/targets/workbook", params={"scenario_id": scenario["id"]})
    assert answer.status_code == 200, answer.text
    book = load_workbook(io.BytesIO(answer.content), read_only=True)
    stations = [row for row in book["station 社区养老服务站"].iter_rows(values_only=True)][1:]
    review = client.get("/regions/wuchang/targets", params={"scenario_id": scenario["id"]}).json()
    assert len(stations) == review["facilities_by_kind"]["station"] > 0


@pytest.mark.parametrize(("query", "status", "kind"), [
    ({"preset": "nowhere"}, 404, "not_found"),
    ({"scenario_id": "missing"}, 404, "not_found"),
    ({"min_catchment": -1}, 422, "validation_error"),
])
def test_a_workbook_that_cannot_be_made_says_why(client, query, status, kind):
    answer = client.get("/regions/wuchang/targets/workbook", params=query)
    assert answer.status_code == status and answer.json()["error"] == kind and answer.json()["detail"]
