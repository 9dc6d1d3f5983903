"""Schemas shared by every resource: errors and GeoJSON."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ErrorOut(BaseModel):
    """Every error answer: what was wrong and how to fix it."""

    detail: str = Field(description="What was wrong and what to change.")
    error: str = Field(description="Kind: validation_error, input_error, crs_mismatch, empty_data, infeasible, not_found, conflict...")
    errors: list[dict[str, Any]] | None = Field(None, description="Request validation: each field that failed.")
    best_achievable: dict[str, Any] | None = Field(None, description="Infeasible target: the best figure reachable.")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in (
        (400, "The request cannot be used as it is."),
        (401, "No API key, or one that is unknown or revoked (send Authorization: Bearer KEY)."),
        (403, "The key's role may not do this (viewers read; planners edit; admins manage keys)."),
        (404, "Unknown region, scenario, job or site (or another team's scenario or job)."),
        (409, "The resource is not in a state that allows this."),
        (413, "Upload too large."),
        (422, "Invalid request, or input geoplan cannot use (the message says what to fix)."),
        (429, "Too many jobs queued or running for this key (the message names the limit)."),
        (500, "Unexpected server error (no details are leaked; see the server log)."),
    )
}


#: The same error answers for routes whose success is not JSON (maps): FastAPI would
#: otherwise document the errors under the route's own media type.
JSON_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": spec["description"], "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
    for status, spec in ERROR_RESPONSES.items()
}


class Feature(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["Feature"]
    geometry: dict[str, Any] | None
    properties: dict[str, Any]


class FeatureCollection(BaseModel):
    """A GeoJSON FeatureCollection in WGS84 (lon, lat), with extra top-level members describing it."""

    model_config = ConfigDict(extra="allow")

    type: Literal["FeatureCollection"]
    features: list[Feature]
