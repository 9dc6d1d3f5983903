"""A real PostgreSQL server for the tests: a throwaway cluster per test session, a fresh database per test.

``GEOPLAN_TEST_POSTGRES=postgresql://user@host:port/db`` points the tests at an
existing server instead. Otherwise the server binaries are looked for on
``PATH``, then in ``/usr/lib/postgresql/*/bin`` (Debian's ``postgresql``
package: ``apt-get install -y postgresql`` or ``make postgres``), and a cluster
is initialised in a fresh temporary directory, listening on 127.0.0.1 only, on a
free port, with no unix socket, trust authentication and ``fsync=off``; it is
stopped and deleted at the end of the session. The tests that use it skip,
saying why, when no server can be started here (``GEOPLAN_TEST_POSTGRES_REQUIRED=1``
makes that a failure instead).

initdb and postgres refuse to run as root, so as root they run as the
``postgres`` user (created by Debian's package), else ``nobody``, or the user
named by ``GEOPLAN_TEST_POSTGRES_USER``; as any other user they run as that user.

The fixtures, for ``tests/conftest.py``::

    from tests.postgres import postgres_db, postgres_url  # noqa: F401

* ``postgres_url`` (session): the URL of the session's server and its database
  ``geoplan_test``, e.g. ``postgresql://postgres@127.0.0.1:PORT/geoplan_test``;
* ``postgres_db`` (function): the URL of a new, empty database, dropped after the test.

Without pytest: ``url, stop = start_test_server()``, or ``with throwaway_server() as url: ...``.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

#: An existing server to test against instead of a throwaway one (a ``postgresql://`` URL).
ENV_URL = "GEOPLAN_TEST_POSTGRES"
#: Set to 1 to fail, not skip, the PostgreSQL tests when no server can be started.
ENV_REQUIRED = "GEOPLAN_TEST_POSTGRES_REQUIRED"
#: The unprivileged user to run initdb and postgres as when the tests run as root.
ENV_USER = "GEOPLAN_TEST_POSTGRES_USER"

#: The database the session's server is created with.
DBNAME = "geoplan_test"
#: The cluster's superuser (``initdb -U``), the user in the URLs.
SUPERUSER = "postgres"
#: Seconds to wait for a started server to accept connections.
START_TIMEOUT = 30.0

INSTALL_HINT = f"apt-get install -y postgresql (or `make postgres`), or set {ENV_URL}=postgresql://user@host:port/db"

#: Server settings of the throwaway cluster: loopback TCP only, no unix socket, durability off for speed.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "log_min_messages": "warning",
}

#: pg_hba.conf of the throwaway cluster: trust, over loopback TCP only.
PG_HBA = """\
# geoplan's throwaway test cluster (tests/postgres.py): trust, loopback TCP only
host    all             all             127.0.0.1/32            trust
"""


class PostgresUnavailable(RuntimeError):
    """No throwaway server can be started here; the message says what is missing and how to get it."""


# ----------------------------------------------------------------------------- finding what it takes


def find_bin_dir() -> Path | None:
    """The directory of ``initdb`` and ``postgres``: from ``PATH``, else the newest ``/usr/lib/postgresql/*/bin``."""
    initdb = shutil.which("initdb")
    if initdb:
        bin_dir = Path(initdb).resolve().parent
        if (bin_dir / "postgres").is_file():
            return bin_dir
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found = [d for d in found if (d / "postgres").is_file()]

    def version(bin_dir: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", bin_dir.parent.name)) or (0,)

    return max(found, key=version) if found else None


@dataclasses.dataclass(frozen=True)
class _User:
    name: str
    uid: int
    gid: int


def _server_user() -> _User | None:
    """Who runs initdb and postgres: None for the current user (not root), else an unprivileged user.

    Raises PostgresUnavailable as root when there is no such user.
    """
    if os.geteuid() != 0:
        return None
    names = [os.environ[ENV_USER]] if os.environ.get(ENV_USER) else ["postgres", "nobody"]
    for name in names:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid != 0:
            return _User(name, entry.pw_uid, entry.pw_gid)
    raise PostgresUnavailable(
        f"running as root, which initdb and postgres refuse, and there is no unprivileged user "
        f"{' or '.join(repr(n) for n in names)} to run them as: apt-get install -y postgresql creates "
        f"'postgres'; or set {ENV_USER}, or run the tests as another user, or set {ENV_URL}"
    )


def missing_postgres() -> str | None:
    """Why a throwaway server cannot be started here (the quick checks only), or None when it might."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return 'psycopg is not installed: pip install -e ".[test]" (or pip install "psycopg[binary]")'
    if find_bin_dir() is None:
        return f"the PostgreSQL server (initdb, postgres) is not on PATH nor in /usr/lib/postgresql/*/bin: {INSTALL_HINT}"
    try:
        _server_user()
    except PostgresUnavailable as exc:
        return str(exc)
    return None


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid without a passwd entry (some containers)
        return f"uid {uid}"


def _tmp_root(user: _User | None) -> str:
    """A temporary directory ``user`` can reach: the usual one, else ``/tmp``."""
    root = tempfile.gettempdir()
    if user is None:
        return root
    for path in [Path(root), *Path(root).parents]:
        st = path.stat()
        if not (st.st_mode & 0o001 or (st.st_uid == user.uid and st.st_mode & 0o100) or (st.st_gid == user.gid and st.st_mode & 0o010)):
            return "/tmp"
    return root


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent_fn() -> Callable[[], None] | None:
    """A preexec_fn that has the kernel send the server SIGQUIT (immediate shutdown) if this thread dies.

    So a test run killed outright (SIGKILL, no atexit) leaves no server behind.
    It runs after the child's switch of user, which would clear the setting.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, int(signal.SIGQUIT), 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the prctl
            os._exit(1)

    return preexec


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


# ----------------------------------------------------------------------------- URLs and databases


def with_database(url: str, dbname: str) -> str:
    """``url`` with its database replaced by ``dbname``."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.netloc:
        raise ValueError(f"not a postgresql:// URL: {url!r}")
    return urlunsplit(parts._replace(path="/" + quote(dbname)))


def create_database(url: str, dbname: str | None = None) -> str:
    """Create an empty database (a random ``geoplan_test_...`` name by default) on ``url``'s server; its URL."""
    import psycopg
    from psycopg import sql

    dbname = dbname or f"{DBNAME}_{secrets.token_hex(6)}"
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    return with_database(url, dbname)


def drop_database(url: str, dbname: str) -> None:
    """Drop ``dbname`` from ``url``'s server, closing any connections still open to it (server 13+)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        force = sql.SQL(" WITH (FORCE)") if conn.info.server_version >= 130000 else sql.SQL("")
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(dbname)) + force)


# ----------------------------------------------------------------------------- the throwaway server


@dataclasses.dataclass
class PostgresServer:
    """A running throwaway cluster; ``stop()`` (idempotent, also run at exit) shuts it down and deletes it."""

    url: str
    port: int
    base_dir: Path
    process: subprocess.Popen
    user: str
    bin_dir: Path
    #: Seconds taken by initdb, by the start until connections are accepted, and by CREATE DATABASE.
    timings: dict[str, float]
    _stopped: bool = False

    @classmethod
    def start(cls, *, dbname: str = DBNAME, timeout: float = START_TIMEOUT) -> PostgresServer:
        """Initialise and start a cluster and create ``dbname``; PostgresUnavailable, saying why, when it cannot."""
        reason = missing_postgres()
        if reason:
            raise PostgresUnavailable(reason)
        bin_dir = find_bin_dir()
        user = _server_user()
        run_as = {} if user is None else {"user": user.uid, "group": user.gid, "extra_groups": []}
        who = user.name if user else _user_name(os.geteuid())

        base = Path(tempfile.mkdtemp(prefix="geoplan-pg-", dir=_tmp_root(user)))
        server = None
        try:
            if user is not None:
                os.chown(base, user.uid, user.gid)
            data = base / "data"
            env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
            env.update(LC_ALL="C", LANG="C", HOME=str(base))
            if user is not None:
                env.update(USER=user.name, LOGNAME=user.name)

            t0 = time.perf_counter()
            initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"]
            try:
                done = subprocess.run(
                    initdb, cwd=base, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, **run_as
                )
            except PermissionError as exc:
                raise PostgresUnavailable(f"cannot run initdb as {who!r} ({exc}): run the tests as a non-root user, or set {ENV_URL}") from exc
            except subprocess.TimeoutExpired as exc:
                raise PostgresUnavailable("initdb took more than 120 s") from exc
            if done.returncode != 0:
                out = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
                raise PostgresUnavailable(f"initdb (as {who!r}, in {base}) failed with exit code {done.returncode}:\n{out}")
            hba = data / "pg_hba.conf"
            hba.write_text(PG_HBA)
            if user is not None:
                os.chown(hba, user.uid, user.gid)
            t_initdb = time.perf_counter() - t0

            t0 = time.perf_counter()
            log = base / "postgres.log"
            for attempt in range(3):  # another process may take the free port before the server binds it
                port = _free_port()
                settings = {**SERVER_SETTINGS, "port": str(port)}
                command = [str(bin_dir / "postgres"), "-D", str(data)]
                for key, value in settings.items():
                    command += ["-c", f"{key}={value}"]
                with open(log, "wb") as log_file:
                    process = subprocess.Popen(
                        command,
                        cwd=base,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log_file,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # its own process group: a ^C reaches pytest only, and stop() can end them all
                        preexec_fn=_die_with_parent_fn(),
                        **run_as,
                    )
                server = cls(
                    url=f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{dbname}",
                    port=port,
                    base_dir=base,
                    process=process,
                    user=who,
                    bin_dir=bin_dir,
                    timings={"initdb": t_initdb},
                )
                atexit.register(server.stop)
                try:
                    server._wait_ready(timeout)
                except PostgresUnavailable:
                    if "already in use" in _tail(log, 50) and attempt < 2:
                        server.stop(remove=False)
                        continue
                    raise
                break
            server.timings["start"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            if dbname != "postgres":
                create_database(with_database(server.url, "postgres"), dbname)
            server.timings["createdb"] = time.perf_counter() - t0
            return server
        except BaseException:
            if server is not None:
                server.stop(remove=False)
            shutil.rmtree(base, ignore_errors=True)
            raise

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        url = with_database(self.url, "postgres")
        deadline = time.monotonic() + timeout
        while True:
            if _exited(self.process, 0):  # left unreaped, for stop()
                raise PostgresUnavailable(f"postgres (as {self.user!r}) exited on start:\n{_tail(self.base_dir / 'postgres.log')}")
            try:
                with psycopg.connect(url, connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise PostgresUnavailable(
                        f"postgres did not accept connections on 127.0.0.1:{self.port} within {timeout:g} s ({exc}):\n"
                        f"{_tail(self.base_dir / 'postgres.log')}"
                    ) from exc
            time.sleep(0.05)

    def stop(self, *, remove: bool = True) -> None:
        """Shut the server down (fast, then immediate, then SIGKILL) with all its processes, and delete the cluster."""
        if not self._stopped:
            self._stopped = True
            with contextlib.suppress(Exception):
                atexit.unregister(self.stop)
            process = self.process
            if process.poll() is None:
                for sig, wait in ((signal.SIGINT, 15.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
                    with contextlib.suppress(ProcessLookupError):
                        process.send_signal(sig)
                    if _exited(process, wait):
                        break
            # The postmaster is a zombie until reaped, so its process group id cannot have been reused yet:
            # end any of its processes still there, then reap it.
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
        if remove:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _exited(process: subprocess.Popen, timeout: float) -> bool:
    """Wait up to ``timeout`` s for ``process`` to exit, leaving it unreaped."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:  # already reaped
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def start_test_server(*, dbname: str = DBNAME, timeout: float = START_TIMEOUT) -> tuple[str, Callable[[], None]]:
    """Start a throwaway server with database ``dbname``: ``(url, stop)``; PostgresUnavailable when it cannot."""
    server = PostgresServer.start(dbname=dbname, timeout=timeout)
    return server.url, server.stop


@contextlib.contextmanager
def throwaway_server(*, dbname: str = DBNAME, timeout: float = START_TIMEOUT) -> Iterator[str]:
    """``with throwaway_server() as url:`` a server for the block, stopped and deleted after it."""
    with PostgresServer.start(dbname=dbname, timeout=timeout) as server:
        yield server.url


# ----------------------------------------------------------------------------- the fixtures

# One server per process, even when the fixture is imported in several places.
_lock = threading.Lock()
_shared: PostgresServer | None = None
_shared_users = 0
_shared_error: PostgresUnavailable | None = None


def _acquire() -> PostgresServer:
    global _shared, _shared_users, _shared_error
    with _lock:
        if _shared_error is not None:
            raise _shared_error
        if _shared is None:
            try:
                _shared = PostgresServer.start()
            except PostgresUnavailable as exc:
                _shared_error = exc
                raise
        _shared_users += 1
        return _shared


def _release() -> None:
    global _shared, _shared_users
    with _lock:
        _shared_users -= 1
        if _shared_users <= 0 and _shared is not None:
            _shared.stop()
            _shared, _shared_users = None, 0


def _unavailable(reason: str):
    if os.environ.get(ENV_REQUIRED, "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"no PostgreSQL server ({ENV_REQUIRED} is set): {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL server: {reason}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a PostgreSQL server and database for the session: ``$GEOPLAN_TEST_POSTGRES``, else a throwaway one."""
    url = os.environ.get(ENV_URL)
    if url:
        try:
            import psycopg
        except ImportError:
            _unavailable('psycopg is not installed: pip install -e ".[test]"')
        try:
            with psycopg.connect(url, connect_timeout=10):
                pass
        except psycopg.Error as exc:
            pytest.fail(f"{ENV_URL}={url} does not accept connections: {exc}", pytrace=False)
        yield url
        return
    try:
        server = _acquire()
    except PostgresUnavailable as exc:
        _unavailable(str(exc))
    try:
        yield server.url
    finally:
        _release()


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[str]:
    """The URL of a new, empty database on the session's server, dropped after the test."""
    name = f"{DBNAME}_{secrets.token_hex(6)}"
    url = create_database(postgres_url, name)
    try:
        yield url
    finally:
        drop_database(postgres_url, name)
