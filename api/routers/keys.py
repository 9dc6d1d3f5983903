"""Keys and the audit log: admins create and revoke API keys and read who wrote what."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from starlette.concurrency import run_in_threadpool

from api.auth import AUTHORIZED, PrincipalDep, role
from api.deps import StoreDep
from api.errors import Conflict, NotFound
from api.schemas.common import ERROR_RESPONSES
from api.schemas.keys import AuditList, KeyCreate, KeyCreated, KeyList, Me

router = APIRouter(tags=["keys"], responses=ERROR_RESPONSES, dependencies=AUTHORIZED)
ADMIN = role("admin")


@router.get("/me", response_model=Me, summary="The key this request is sent with: its role and team (any role)",
            openapi_extra=role("viewer"))
async def me(who: PrincipalDep) -> dict:
    return {"key_id": who.key_id, "role": who.role, "team": who.team, "name": who.name}


@router.get("/keys", response_model=KeyList, summary="Every API key (without secrets)", openapi_extra=ADMIN)
async def list_keys(store: StoreDep, team: Annotated[str | None, Query(max_length=64)] = None) -> dict:
    keys = await run_in_threadpool(store.list_keys, team=team)
    return {"keys": [dataclasses.asdict(k) for k in keys]}


@router.post("/keys", response_model=KeyCreated, status_code=status.HTTP_201_CREATED,
             summary="Create a key (its secret is shown once)", openapi_extra=ADMIN)
async def create_key(body: KeyCreate, store: StoreDep) -> dict:
    record, secret = await run_in_threadpool(lambda: store.create_key(role=body.role, team=body.team, name=body.name))
    return {**dataclasses.asdict(record), "key": secret}


@router.delete("/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               summary="Revoke a key (at once, for every worker)", openapi_extra=ADMIN)
async def revoke_key(key_id: Annotated[str, Path(max_length=64)], store: StoreDep, who: PrincipalDep) -> Response:
    if who.key_id is not None and key_id == who.key_id:
        raise Conflict("A key cannot revoke itself here (no admin may lock themselves out): use another admin key, "
                       f"or 'geoplan-api keys revoke {key_id}' on the server.")
    if not await run_in_threadpool(store.revoke_key, key_id):
        raise NotFound(f"No live key {key_id!r}. List them with GET /keys.")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/audit", response_model=AuditList, summary="Who wrote what, newest first", openapi_extra=ADMIN)
async def audit_log(store: StoreDep, team: Annotated[str | None, Query(max_length=64)] = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
    entries = await run_in_threadpool(lambda: store.audit_log(team=team, limit=limit))
    return {"entries": [dataclasses.asdict(e) for e in entries]}
