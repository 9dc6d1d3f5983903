"""The error contract: domain errors map to 4xx with their message; anything else is a 500 without details."""

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import errors
from geoplan.errors import ConfigError, CRSMismatchError, EmptyDataError, InfeasibleError, InputError
from tests.api.conftest import assert_error, bearer


def app_raising(exc: Exception) -> TestClient:
    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    def boom():
        raise exc

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (InputError("p must be positive; got -1."), "input_error"),
        (ConfigError("Unknown key 'tresholds' in [analysis]."), "config_error"),
        (CRSMismatchError("The layer has no CRS; save it with one."), "crs_mismatch"),
        (EmptyDataError("The file is empty."), "empty_data"),
        (InfeasibleError("No plan meets the budget; raise it."), "infeasible"),
    ],
)
def test_domain_errors_are_422_with_their_message(exc, kind):
    response = app_raising(exc).get("/boom")
    assert response.status_code == 422
    assert response.json() == {"detail": str(exc), "error": kind}


def test_unexpected_errors_leak_nothing():
    response = app_raising(RuntimeError("secret path /etc/geoplan and a stack")).get("/boom")
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal" and "reference" in body["detail"]
    assert "secret" not in response.text and "Traceback" not in response.text


def test_validation_errors_are_readable(client):
    response = client.get("/regions/wuchang/coverage/gaps", params={"limit": 0})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error" and "query.limit" in body["detail"] and body["errors"][0]["loc"] == ["query", "limit"]


def test_unknown_path_and_method(client):
    assert client.get("/nowhere").json()["error"] == "not_found"
    assert client.put("/regions").status_code == 405


def test_unknown_coordinate_systems_and_odd_keys_are_refused(client, api_keys):
    created = client.post("/scenarios", json={"region": "wuchang", "name": "coords"})
    sid = created.json()["id"]
    assert_error(client.patch(f"/scenarios/{sid}", json={"coord_system": "zz"}), 422, "Unknown coordinate system 'zz'", "gcj02")
    assert client.patch(f"/scenarios/{sid}", json={"coord_system": "GCJ-02"}).status_code == 200  # an alias is the system
    admin = bearer(api_keys["admin"])
    assert_error(client.post("/keys", json={"role": "viewer", "team": "\u0000"}, headers=admin), 422, "team")
    assert_error(client.post("/keys", json={"role": "viewer", "team": "a", "scope": "all"}, headers=admin), 422, "scope")
