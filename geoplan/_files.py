"""File helpers shared by the loaders and writers: checks, hashing, atomic writes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd

from geoplan.errors import EmptyDataError, InputError


def existing_file(path: str | Path, *, what: str) -> Path:
    """The path as a ``Path`` if it is a non-empty file, else a clear ``InputError``."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"The {what} file {path} does not exist. Check the path (relative paths start at {Path.cwd()}).")
    if path.is_dir():
        raise InputError(f"The {what} path {path} is a folder; give the file inside it.")
    if path.stat().st_size == 0:
        raise EmptyDataError(f"The {what} file {path} is empty.")
    return path


def read_vector(path: str | Path, *, what: str, layer: str | None = None) -> gpd.GeoDataFrame:
    """Read a vector layer (GeoParquet or anything GDAL reads) with errors that name the file."""
    path = existing_file(path, what=what)
    try:
        if path.suffix.lower() in (".parquet", ".geoparquet"):
            frame = gpd.read_parquet(path)
        else:
            frame = gpd.read_file(path, layer=layer)
    except Exception as exc:  # GDAL, pyarrow and fiona raise many kinds
        raise InputError(f"Cannot read the {what} file {path}: {exc}") from exc
    if frame.empty:
        raise EmptyDataError(f"The {what} file {path} has no features.")
    return frame


def content_hash(path: Path) -> str:
    """SHA-256 of a file's bytes (the cache key of anything built from it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Build a directory in a temporary place and move it to ``target`` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Write a file at a temporary path beside ``target`` and rename it into place on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=target.suffix, dir=target.parent)
    os.close(handle)
    tmp = Path(name)
    tmp.unlink()
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
