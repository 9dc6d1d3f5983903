"""Property-based run of schemathesis over the whole OpenAPI schema: no server error, no answer that breaks its schema.

Bounded: a few examples per operation, no shrinking, no deadline. One test
per operation, listed from the schema of an app built without starting it.
The requests go to an app of their own (its own database, the session's
Wuchang preloaded) whose job threads are stopped first: generated
recommendations queue there and are dropped with it, instead of keeping the
CPU busy for the rest of the run.

Random ids rarely name anything, so every generated request is sent twice:
as generated, and with its region, scenario and job ids replaced by real ones,
which takes the generated query and body values into the real code paths. A
stateful run then chains the operations by the links schemathesis finds
(POST /scenarios -> GET/PATCH/DELETE /scenarios/{id}, POST /keys -> DELETE
/keys/{id}...). Every request carries an admin key of the fuzzing team.
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
from api.store import Store
from tests.api.conftest import SAMPLE_FACILITIES, bearer, upload

MAX_EXAMPLES = 8
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
OPERATIONS = [result.ok().label for result in schemathesis.openapi.from_dict(create_app().openapi()).get_all_operations()]


@pytest.fixture(scope="module")
def fuzz_key(tmp_path_factory) -> tuple[str, str]:
    """(database, admin key) of the fuzzing app."""
    db = str(tmp_path_factory.mktemp("fuzz") / "fuzz.sqlite3")
    store = Store(db)
    key = store.create_key(role="admin", team="fuzz", name="schemathesis")[1]
    store.close()
    return db, key


@pytest.fixture(scope="module")
def fuzz_client(fuzz_key, api_settings, wuchang):
    settings = api_settings.model_copy(update={"db_path": fuzz_key[0], "job_threads": 0, "max_jobs_per_key": 10_000})
    with TestClient(create_app(settings, preloaded={"wuchang": wuchang}), raise_server_exceptions=False,
                    headers=bearer(fuzz_key[1])) as client:
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
def test_operation_conforms_to_its_schema(live_schema, real_ids, fuzz_client, fuzz_key, label):
    operation = live_schema.find_operation_by_label(label)

    @given(case=operation.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def check(case):
        case.call_and_validate(checks=CHECKS, headers=bearer(fuzz_key[1]))
        if with_real_ids(case, real_ids, fuzz_client):
            case.call_and_validate(checks=CHECKS, headers=bearer(fuzz_key[1]))

    check()


def test_chained_operations_conform_to_their_schemas(live_schema, fuzz_key):
    """Stateful: operations chained by the links schemathesis infers from the schema, with real ids from real answers.

    Each run starts from an empty team (its scenarios, jobs and other keys are
    removed after it), so that every run sees the same state, as hypothesis needs.
    """
    store = Store(fuzz_key[0])  # its own connection: schemathesis runs the app's lifespan (and its store) per call
    own, key = store.create_key(role="admin", team="fuzz-stateful", name="stateful run")

    class Workflow(live_schema.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"headers": bearer(key)}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS)

        def teardown(self):
            with store.transaction() as tx:
                tx.execute("DELETE FROM jobs WHERE team = 'fuzz-stateful'")
                tx.execute("DELETE FROM scenario_results WHERE scenario_id IN (SELECT id FROM scenarios WHERE team = 'fuzz-stateful')")
                tx.execute("DELETE FROM scenarios WHERE team = 'fuzz-stateful'")
                tx.execute("DELETE FROM api_keys WHERE id <> ? AND created_at >= ?", (own.id, own.created_at))

    try:
        Workflow.run(settings=settings(max_examples=25, stateful_step_count=6, deadline=None, derandomize=True, database=None,
                                       phases=[Phase.generate], suppress_health_check=list(HealthCheck)))
    finally:
        store.close()
