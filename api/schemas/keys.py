"""API keys and the audit log (admins only)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.store import AuditRecord

Role = Literal["viewer", "planner", "admin"]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role = Field(description="viewer: reads; planner: also edits, runs and deletes the team's scenarios; admin: also manages keys.")
    team: str = Field(min_length=1, max_length=64, pattern=r"^[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$",
                      description="The team whose scenarios and jobs the key sees (no control characters).")
    name: str = Field("", max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$", description="Who or what holds the key, e.g. 'Wuchang civil affairs, planning section'.")


class KeyOut(BaseModel):
    id: str
    role: Role
    team: str
    name: str
    created_at: str
    revoked_at: str | None


class KeyCreated(KeyOut):
    key: str = Field(description="The secret, shown this once: send it as 'Authorization: Bearer KEY'. Only its hash is stored.")


class Me(BaseModel):
    key_id: str | None = Field(description="None when the service runs with GEOPLAN_AUTH=off.")
    role: Role
    team: str | None = Field(description="None: every team (GEOPLAN_AUTH=off).")
    name: str


class KeyList(BaseModel):
    keys: list[KeyOut]


class AuditList(BaseModel):
    entries: list[AuditRecord] = Field(description="Newest first: who (key, role, team) wrote what (method, path) and the answer's status.")
