"""A real service on 127.0.0.1 (keys on, Wuchang preloaded) per module, and a fresh headless Chromium per test."""

from __future__ import annotations

import pytest

from tests.browser import chromium, missing_browser
from tests.browser_workspace.driver import Workspace, WorkspaceServer


@pytest.fixture(scope="module")
def server(tmp_path_factory, wuchang, cache_dir):
    """The service, its network cache the session's (filled by loading ``wuchang`` first)."""
    reason = missing_browser()
    if reason:
        pytest.skip(reason)
    with WorkspaceServer(tmp_path_factory.mktemp("workspace"), cache_dir=cache_dir) as running:
        yield running


@pytest.fixture
def downloads(tmp_path):
    path = tmp_path / "downloads"
    path.mkdir()
    return path


@pytest.fixture
def page(server, downloads):
    """The workspace in Chromium (1440 x 900), downloads going to ``downloads``."""
    with chromium(width=1440, height=900) as driver:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        yield Workspace(driver, server.url)
