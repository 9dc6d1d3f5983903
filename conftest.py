"""Doctest fixtures: the shipped Wuchang region as ``wuchang``, loaded once per session.

The examples in geoplan's docstrings that work on the real region use the name
``wuchang``, i.e. ``geoplan.load_region("wuchang")``. It is loaded only when a
collected example uses it, once, with the session's temporary network cache
(shared with the tests' ``cache_dir``; the user's ``~/.cache/geoplan`` is
neither read nor filled). Such examples are marked ``slow``, like the tests that
load a real region, so ``make test-fast`` leaves them out.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

#: ``wuchang`` as a name in an example's source (not the string ``"wuchang"``).
_USES_WUCHANG = re.compile(r"(?<![\w\"'])wuchang(?![\w\"'])")


def _uses_wuchang(item) -> bool:
    return isinstance(item, pytest.DoctestItem) and any(_USES_WUCHANG.search(ex.source) for ex in item.dtest.examples)


def session_cache_dir(tmp_path_factory) -> Path:
    """The network cache of this test session (the same folder as the tests' ``cache_dir``)."""
    path = tmp_path_factory.getbasetemp() / "geoplan-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def doctest_wuchang(tmp_path_factory):
    """The shipped default region, loaded once for the doctests."""
    from geoplan.region import load_region

    return load_region("wuchang", cache_dir=session_cache_dir(tmp_path_factory))


@pytest.fixture(autouse=True)
def _wuchang_for_doctests(request, doctest_namespace):
    if _uses_wuchang(request.node):
        doctest_namespace["wuchang"] = request.getfixturevalue("doctest_wuchang")


def pytest_collection_modifyitems(items):
    """An example that needs the real region waits for it to load (~10 s): mark it slow."""
    for item in items:
        if _uses_wuchang(item):
            item.add_marker(pytest.mark.slow)
