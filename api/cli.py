"""``geoplan-api``: run the service and manage its API keys.

    geoplan-api keys create --role planner --team wuchang-mzj --name "planning section"
    geoplan-api keys list
    geoplan-api keys revoke KEY_ID
    geoplan-api serve            # web workers and job workers
    geoplan-api worker           # one job worker process
    geoplan-api settings         # every GEOPLAN_* setting and its value
"""

from __future__ import annotations

import logging
from typing import Annotated, Optional

import typer

from api.db import redact
from api.settings import Settings
from api.store import ROLES, Store

app = typer.Typer(help="The geoplan planning service: serve it, run job workers, manage API keys.", no_args_is_help=True)
keys = typer.Typer(help="API keys: create (printed once), list, revoke.", no_args_is_help=True)
app.add_typer(keys, name="keys")


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _store() -> Store:
    return Store(_settings().db_path)


@keys.command("create")
def create_key(
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")],
    team: Annotated[str, typer.Option(help="The team whose scenarios and jobs the key sees.")],
    name: Annotated[str, typer.Option(help="Who holds it (shown in lists and the audit log).")] = "",
) -> None:
    """Create a key and print its secret (this once; only its hash is stored)."""
    if role not in ROLES:
        raise typer.BadParameter(f"--role must be one of {', '.join(ROLES)}; got {role!r}")
    store = _store()
    try:
        record, secret = store.create_key(role=role, team=team, name=name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"key {record.id}: role {record.role}, team {record.team}, in {redact(store.db.target)}")
    typer.echo("Send it as 'Authorization: Bearer KEY'. It is shown only now; store it safely:")
    typer.echo(secret)


@keys.command("list")
def list_keys(team: Annotated[Optional[str], typer.Option(help="Only this team's.")] = None) -> None:
    """Every key, without secrets."""
    for key in _store().list_keys(team=team):
        state = f"revoked {key.revoked_at}" if key.revoked_at else "live"
        typer.echo(f"{key.id}\t{key.role}\t{key.team}\t{state}\t{key.created_at}\t{key.name}")


@keys.command("revoke")
def revoke_key(key_id: str) -> None:
    """Revoke a key at once (every web worker checks the store on each request)."""
    if not _store().revoke_key(key_id):
        typer.echo(f"No live key {key_id!r} (geoplan-api keys list).", err=True)
        raise typer.Exit(1)
    typer.echo(f"key {key_id} revoked")


@app.command()
def worker(
    threads: Annotated[int, typer.Option(min=1, max=8, help="Jobs this process runs at once.")] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """One job worker process: takes jobs from the store and runs them (no requests served)."""
    from api.worker import run_worker

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_worker(_settings(), threads=threads)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """The service: GEOPLAN_WEB_WORKERS web workers and GEOPLAN_JOB_WORKERS job workers."""
    from api.serve import serve as run

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings()
    if not settings.auth:
        typer.echo("note: GEOPLAN_AUTH=off: no API keys are asked for; every request acts as an admin. For local development only.", err=True)
    raise typer.Exit(run(settings, host=host, port=port, log_level=log_level))


@app.command("settings")
def show_settings() -> None:
    """Every GEOPLAN_* setting, its value here, and what it does."""
    for var, value, meaning in _settings().table():
        typer.echo(f"{var}={value}\t{meaning}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
