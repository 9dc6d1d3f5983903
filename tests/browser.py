"""Headless Chromium for the browser tests: Debian's chromium and chromedriver, driven by selenium.

Install with ``apt-get install -y chromium chromium-driver`` (and ``fonts-noto-cjk``
for legible Chinese in screenshots) and ``pip install selenium``. The tests skip,
saying why, when any of them is missing.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

#: Flags for a quiet, reproducible headless Chromium that makes no requests of its own.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found: apt-get install -y chromium"
    if not CHROMEDRIVER.exists():
        return f"{CHROMEDRIVER} not found: apt-get install -y chromium-driver"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install selenium"
    return None


@contextlib.contextmanager
def chromium(*, width: int = 1280, height: int = 800) -> Iterator:
    """A headless Chromium webdriver with a fresh profile, logging the console and the network.

    The page area is exactly ``width`` x ``height`` CSS pixels (screenshots too).
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="geoplan-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        )
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def requests(driver) -> list[tuple[str, str]]:
    """``(url, document_url)`` of every request since the last call (from the performance log).

    ``document_url`` is the page that asked; the browser's own new-tab page
    (``chrome://...``) shows up here too.
    """
    found = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            params = message["params"]
            found.append((params["request"]["url"], params.get("documentURL", "")))
    return found


def console_errors(driver) -> list[str]:
    """Console messages of severity SEVERE (JavaScript errors, failed loads) since the last call."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
