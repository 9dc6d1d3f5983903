"""Property-based run of schemathesis over the whole OpenAPI schema: no server error, no answer that breaks its schema.

Bounded: a few examples per operation, no shrinking, no deadline. One test
per operation, listed from the schema of an app built without starting it.
The requests go to an app of their own (its own database, the session's
Wuchang preloaded) whose job threads are stopped first: generated
recommendations queue there and are dropped with it, instead of keeping the
CPU busy for the rest of the run.

Random ids rarely name anything, so every generated request is sent twice:
as generated, and with its region, scenario and job ids replaced by real ones,
which takes the generated query and body values into the real code paths.
"""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import create_app
from tests.api.conftest import SAMPLE_FACILITIES, upload

MAX_EXAMPLES = 8
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
OPERATIONS = [result.ok().label for result in schemathesis.openapi.from_dict(create_app().openapi()).get_all_operations()]


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory, api_settings, wuchang):
    settings = api_settings.model_copy(update={"db_path": tmp_path_factory.mktemp("fuzz") / "fuzz.sqlite3"})
    with TestClient(create_app(settings, preloaded={"wuchang": wuchang}), raise_server_exceptions=False) as client:
        client.app.state.services.jobs.stop()
        yield client


@pytest.fixture(scope="module")
def live_schema(fuzz_client):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_client.app)


@pytest.fixture(scope="module")
def real_ids(fuzz_client) -> dict:
    client = fuzz_client
    """A scenario with the sample facilities and one with a new station, and a (queued) job."""
    first = client.post("/scenarios", json={"region": "wuchang", "name": "fuzz base"}).json()["id"]
    upload(client, first, SAMPLE_FACILITIES.read_bytes(), coord_system="gcj02")
    second = client.post("/scenarios", json={"region": "wuchang", "name": "fuzz two", "added": [{"lon": 114.307, "lat": 30.5607}]}).json()["id"]
    job = client.post(f"/scenarios/{second}/run").json()["id"]
    recommendation = client.post("/recommendations", json={"region": "wuchang", "kinds": [{"p": 2}]}).json()["id"]
    return {"region": "wuchang", "scenario_id": first, "job_id": job, "recommendation_id": recommendation, "ids": [first, second]}


def with_real_ids(case, ids: dict, client) -> bool:
    """Replace the case's ids by real ones; False when it has none to replace."""
    changed = False
    for name in ("region", "scenario_id", "job_id"):
        if case.path_parameters and name in case.path_parameters:
            value = ids[name]
            if name == "scenario_id" and case.method.upper() == "DELETE":
                value = client.post("/scenarios", json={"region": "wuchang", "name": "to delete"}).json()["id"]
            if name == "job_id" and case.path.startswith("/recommendations"):
                value = ids["recommendation_id"]
            case.path_parameters[name] = value
            changed = True
    if case.query and "ids" in case.query:
        case.query["ids"] = ids["ids"]
        changed = True
    if case.query and case.query.get("scenario_id") is not None:
        case.query["scenario_id"] = ids["scenario_id"]
        changed = True
    if isinstance(case.body, dict) and "region" in case.body:
        case.body["region"] = ids["region"]
        if case.body.get("scenario_id") is not None:
            case.body["scenario_id"] = ids["scenario_id"]
        changed = True
    return changed


pytestmark = pytest.mark.slow


def test_every_operation_is_tested():
    assert len(OPERATIONS) >= 20 and "GET /regions/{region}/coverage/gaps" in OPERATIONS


@pytest.mark.parametrize("label", OPERATIONS)
def test_operation_conforms_to_its_schema(live_schema, real_ids, fuzz_client, label):
    operation = live_schema.find_operation_by_label(label)

    @given(case=operation.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def check(case):
        case.call_and_validate(checks=CHECKS)
        if with_real_ids(case, real_ids, fuzz_client):
            case.call_and_validate(checks=CHECKS)

    check()
