"""The workspace as a planner uses it: a real service on 127.0.0.1 and the page in headless Chromium.

Shared by the browser tests and ``bench/workspace.py``. :class:`WorkspaceServer`
starts uvicorn with a fresh database and keys made beforehand (one per role);
:class:`Workspace` drives the page: sign in, switch tabs, click the map at a
longitude and latitude, and read the figures it shows.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
SAMPLE_FACILITIES = REPO / "data" / "facilities" / "wuchang_sample_gcj02.csv"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, *, timeout_s: float, what: str, poll_s: float = 0.05):
    """``check()``'s first truthy value within ``timeout_s``, else AssertionError saying ``what`` did not happen."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout_s:g} s")
        time.sleep(poll_s)


class WorkspaceServer:
    """``uvicorn api.main:create_app`` on a free loopback port, with a planner, a viewer and an admin key."""

    def __init__(self, workdir: Path, *, region: str = "wuchang", cache_dir: Path | None = None, job_threads: int = 1):
        self.workdir = Path(workdir)
        self.region = region
        self.cache_dir = cache_dir
        self.job_threads = job_threads
        self.process: subprocess.Popen | None = None
        self.keys: dict[str, str] = {}
        self.url = ""

    def __enter__(self) -> "WorkspaceServer":
        from api.store import Store

        self.workdir.mkdir(parents=True, exist_ok=True)
        db = self.workdir / "workspace.sqlite3"
        store = Store(db)
        self.keys = {role: store.create_key(role=role, team="wuchang-mzj", name=f"workspace {role}")[1] for role in ("viewer", "planner", "admin")}
        store.close()
        env = {**os.environ, "GEOPLAN_DB": str(db), "GEOPLAN_REGIONS": self.region, "GEOPLAN_PRELOAD": self.region,
               "GEOPLAN_JOB_THREADS": str(self.job_threads), "GEOPLAN_UPLOAD_DIR": str(self.workdir / "uploads")}
        env.pop("GEOPLAN_AUTH", None)  # keys on, as on a bureau's network
        if self.cache_dir is not None:
            env["GEOPLAN_CACHE_DIR"] = str(self.cache_dir)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = self.workdir / "server.log"
        command = [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", "127.0.0.1", "--port", str(port),
                   "--log-level", "warning"]
        self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
                                        start_new_session=True)
        try:
            wait_for(self._ready, timeout_s=300, what=f"the service did not load {self.region}", poll_s=0.2)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"the service exited:\n{self.log.read_text()[-4000:]}")
        try:
            health = httpx.get(f"{self.url}/health", timeout=1).json()
        except (httpx.HTTPError, ValueError):
            return False
        circles = health.get("circle_process_regions")  # the care-circle process has the region ready as well
        return self.region in health.get("regions_loaded", []) and (circles is None or self.region in circles)

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)

    def http(self, role: str = "planner") -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, headers={"Authorization": f"Bearer {self.keys[role]}"})


class Workspace:
    """The workspace page in a webdriver (``tests.browser.chromium``)."""

    def __init__(self, driver, url: str):
        self.driver = driver
        self.url = url

    # --- page ------------------------------------------------------------------------------
    def open(self, place: str = "") -> "Workspace":
        self.driver.get(f"{self.url}/app/" + (f"#{place}" if place else ""))
        return self

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        return self.find(css).text.strip()

    def sign_in(self, key: str, *, remember: bool = False) -> None:
        wait_for(lambda: self.js("return !document.getElementById('sign-in').hidden"), timeout_s=20, what="the sign-in form")
        self.find("#sign-in-key").send_keys(key)
        if remember:
            self.find("#sign-in-remember").click()
        self.find("#sign-in-form button[type=submit]").click()

    def wait_ready(self, timeout_s: float = 60) -> None:
        wait_for(lambda: self.js("return document.body.dataset.ready === 'true'"), timeout_s=timeout_s, what="the workspace did not load")

    def state(self, path: str):
        """A value of the page's state, e.g. ``state.scenario.id`` (JSON)."""
        chain = path.replace(".", "?.")
        return self.js(f"return JSON.parse(JSON.stringify(window.geoplanWorkspace?.{chain} ?? null))")

    def tab(self, name: str) -> None:
        self.find(f"[data-tab='{name}']").click()

    def mode(self, name: str) -> None:
        self.find(f"button[data-mode='{name}']").click()

    def error(self, slot: str) -> str:
        return self.js("const s = document.getElementById(arguments[0] + '-error') || document.querySelector(`[data-error-for='${arguments[0]}']`);"
                       "return s ? s.textContent.trim() : null", slot)

    def wait_error(self, slot: str, timeout_s: float = 30) -> str:
        return wait_for(lambda: self.error(slot), timeout_s=timeout_s, what=f"no message next to {slot}")

    # --- map -------------------------------------------------------------------------------
    def click_map(self, lon: float, lat: float) -> None:
        """A real mouse click on the map at (lon, lat), WGS84."""
        from selenium.webdriver.common.action_chains import ActionBuilder

        x, y = self.js("""const map = window.geoplanWorkspace.map.map, box = map.getContainer().getBoundingClientRect();
            const p = map.latLngToContainerPoint([arguments[1], arguments[0]]); return [box.left + p.x, box.top + p.y];""", lon, lat)
        actions = ActionBuilder(self.driver)
        actions.pointer_action.move_to_location(round(x), round(y)).click()
        actions.perform()

    def layer_size(self, name: str) -> int:
        """Features (or markers) in one of the map's layers."""
        return self.js("const l = window.geoplanWorkspace.map.layers[arguments[0]]; return l ? l.getLayers().length : 0;", name)

    # --- figures ---------------------------------------------------------------------------
    def covered(self, group: str = "pop_60", threshold: float = 15) -> float:
        """The covered people shown for ``group`` within ``threshold`` minutes (the cell's exact figure)."""
        return float(self.find(f"[data-cell='{group}:{threshold:g}']").get_attribute("data-covered"))

    def covered_text(self, group: str = "pop_60", threshold: float = 15) -> str:
        return self.find(f"[data-cell='{group}:{threshold:g}'] .people").text.strip()

    def gain(self, group: str = "pop_60", threshold: float = 15) -> int:
        """The change the last edit made, as the page shows it (+2,777 -> 2777)."""
        return parse_signed(self.find(f"[data-gain='{group}:{threshold:g}']").text)

    def edits(self) -> int:
        return self.js("return window.geoplanWorkspace.timings.edits.length")

    def add_site(self, lon: float, lat: float, *, kind: str = "station", timeout_s: float = 60) -> float:
        """Click the map with the add tool and wait for the new figures; the page's own click-to-figures time (ms)."""
        return self.edit(lambda: self.click_map(lon, lat), mode=kind, timeout_s=timeout_s)

    def edit(self, act, *, mode: str | None = None, timeout_s: float = 60) -> float:
        """Do ``act()`` (with the map tool ``mode``) and wait for the figures after the edit; its click-to-figures time (ms)."""
        if mode is not None:
            self.mode(mode)
        done = self.edits()
        act()
        wait_for(lambda: self.edits() > done, timeout_s=timeout_s, what="the figures after the edit")
        return self.js("return window.geoplanWorkspace.timings.edits.at(-1)")

    def idle(self, timeout_s: float = 60) -> None:
        """Until no request of the page is outstanding."""
        wait_for(lambda: self.js("return document.getElementById('busy').textContent === ''"), timeout_s=timeout_s,
                 what="the page still waits for the service")


def parse_signed(text: str) -> int:
    text = text.strip().replace(",", "").replace("±", "")
    sign = -1 if text.startswith(("−", "-")) else 1
    return sign * int(text.lstrip("+−-"))


def api_coverage(http: httpx.Client, region: str, scenario_id: str | None, group: str = "pop_60", threshold: float = 15) -> float:
    """The service's covered people for ``group`` within ``threshold`` minutes."""
    query = {"threshold_min": threshold, **({"scenario_id": scenario_id} if scenario_id else {})}
    answer = http.get(f"/regions/{region}/coverage", params=query)
    answer.raise_for_status()
    return next(r["covered"] for r in answer.json()["rows"] if r["group"] == group)


def sent_elsewhere(sent: list[tuple[str, str]], url: str) -> list[str]:
    """Requests (from ``tests.browser.requests``) to anywhere but the service on loopback."""
    return [u for u, _ in sent if re.match(r"(https?|wss?|ftp):", u) and not u.startswith(url + "/")]


def unexpected_console(messages: list[str], *, expected: tuple[str, ...] = ()) -> list[str]:
    """Console errors other than the ``expected`` substrings."""
    return [m for m in messages if not any(e in m for e in expected)]
