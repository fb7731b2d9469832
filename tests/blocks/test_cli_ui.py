"""``eventblocks ui`` as a user runs it: a subprocess serving a real port over the
home store, stopped by SIGTERM or Ctrl-C; the warning off loopback, ``--open``,
and the errors (a taken port, a bad URL, no store, the extra missing)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

FLOW = textwrap.dedent(
    """
    from blocks import Block
    from emitters import flow_run

    class Lamp(Block):
        def switch(self, on: bool) -> bool:
            if not on:
                raise RuntimeError("the bulb is gone")
            return on

    Lamp().save("hall", overwrite=True)
    lamp = Lamp.load("hall")
    with flow_run("evening") as run:
        lamp.switch(True)
        try:
            lamp.switch(False)
        except RuntimeError:
            pass
    print(run.id)
    """
)


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "EVENTBLOCKS_HOME": str(home), **extra}
    env.pop("EVENTBLOCKS_EMITTERS", None)
    env.pop("EVENTBLOCKS_DATABASE_URL", None)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def home(tmp_path: Path) -> tuple[Path, str]:
    """A home whose store holds one run (made by a script with nothing set up)."""
    home = tmp_path / "home"
    script = tmp_path / "flow.py"
    script.write_text(FLOW)
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True, text=True, env=_env(home), timeout=60, check=True,
    )  # fmt: skip
    return home, done.stdout.split()[-1]


class Served:
    """A running ``eventblocks ui``."""

    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.base = f"http://127.0.0.1:{port}"

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        self.process.send_signal(sig)
        out, err = self.process.communicate(timeout=20)
        return self.process.returncode, out, err


def _start(home: Path, *args: str, env: dict[str, str] | None = None) -> Served:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "blocks", "ui", "--port", str(port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env or _env(home),
    )  # fmt: skip
    served = Served(process, port)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"eventblocks ui ended early: {out} {err}")
        try:
            httpx.get(f"{served.base}/api/runs", timeout=1)
            return served
        except httpx.TransportError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail("eventblocks ui did not answer within 30 s")
            time.sleep(0.1)


@pytest.fixture
def served(home: tuple[Path, str]) -> Iterator[Served]:
    """``eventblocks ui`` on a free port over the home store."""
    served = _start(home[0])
    yield served
    if served.process.poll() is None:
        served.process.kill()
        served.process.communicate()


def _raw_get(base: str, target: str, host: str) -> tuple[int, bytes]:
    """GET ``target`` exactly as written (no client tidies it), naming ``host``."""
    address = base.removeprefix("http://").rpartition(":")
    with socket.create_connection((address[0], int(address[2])), timeout=10) as sock:
        request = f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_on_loopback_only_loopback_names_and_no_path_out_of_the_assets(
    served: Served,
) -> None:
    """Served on 127.0.0.1, a Host naming another site (DNS rebinding) is 400,
    loopback names with any port are served, and no request path, however
    encoded, reads a file outside the page's assets."""
    port = served.base.rpartition(":")[2]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "[::1]:1"):
        assert _raw_get(served.base, "/api/runs", host)[0] == 200, host
    for host in (f"rebind.attacker.example:{port}", "attacker.example", "10.1.2.3"):
        status, body = _raw_get(served.base, "/api/runs", host)
        assert status == 400, host
        assert b"evening" not in body
    ours = f"127.0.0.1:{port}"
    for target in (
        "/static/../_api.py",
        "/static/%2e%2e/_api.py",
        "/static/..%2F_api.py",
        "/static/%2e%2e%2f%2e%2e%2f_cli/ui.py",
        "/static/",
    ):
        status, body = _raw_get(served.base, target, ours)
        assert status == 404, target
        assert b"import" not in body, target


def test_serves_the_home_store_and_stops_on_sigterm(
    served: Served, home: tuple[Path, str]
) -> None:
    """The page and the API answer over HTTP; SIGTERM ends it with status 0, the
    address printed and no warning."""
    _, run_id = home
    runs = httpx.get(f"{served.base}/api/runs").json()["runs"]
    assert [r["id"] for r in runs] == [run_id]
    assert runs[0]["failures"] == 1
    timeline = httpx.get(f"{served.base}/api/runs/evening/timeline").json()
    assert [c["outcome"] for c in timeline["calls"]] == ["succeeded", "failed"]
    blocks = httpx.get(f"{served.base}/api/blocks").json()["blocks"]
    assert [b["block"] for b in blocks] == ["lamp/hall"]
    page = httpx.get(f"{served.base}/")
    assert page.status_code == 200
    assert "content-security-policy" in page.headers
    assert httpx.post(f"{served.base}/api/runs").status_code == 405
    status, out, err = served.stop(signal.SIGTERM)
    assert status == 0, err
    assert f"at {served.base}/ (Ctrl-C to stop)" in out
    assert out.rstrip().endswith("Stopped.")
    assert err == ""


def test_ctrl_c_stops_it_cleanly(served: Served) -> None:
    """SIGINT, as Ctrl-C sends it, ends it with status 0 and no traceback."""
    status, out, err = served.stop(signal.SIGINT)
    assert status == 0, err
    assert "Traceback" not in err
    assert out.rstrip().endswith("Stopped.")


def test_another_host_is_warned_about(home: tuple[Path, str]) -> None:
    """Listening beyond loopback prints that the page has no authentication; any
    Host is then answered (the network's names are the user's to choose)."""
    served = _start(home[0], "--host", "0.0.0.0")
    assert _raw_get(served.base, "/api/runs", "ui.example:8642")[0] == 200
    status, _, err = served.stop()
    assert status == 0
    assert err.startswith("Warning: the page has no authentication")
    assert "0.0.0.0" in err


def test_open_opens_the_page_in_a_browser(
    home: tuple[Path, str], tmp_path: Path
) -> None:
    """--open hands the page's address to the browser once the server is up."""
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    served = _start(home[0], "--open", env=_env(home[0], BROWSER=str(browser)))
    deadline = time.monotonic() + 20
    while not opened.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    served.stop()
    assert opened.read_text().strip() == f"{served.base}/"


def _error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


def _ui(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "blocks", "ui", *args],
        capture_output=True, text=True, env=_env(home, **env), timeout=60,
    )  # fmt: skip


def test_a_taken_port_is_one_line(home: tuple[Path, str]) -> None:
    """A port another server listens on: one line naming it, status 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _error(_ui(home[0], "--port", str(port)))
    assert f"Cannot listen on 127.0.0.1:{port}" in line
    assert "--port" in line


def test_stores_that_cannot_be_read_are_one_line(tmp_path: Path) -> None:
    """A malformed URL, a SQLite file that does not exist (not created), a
    database without events, an unreachable server: one line, status 1."""
    home = tmp_path / "home"
    line = _error(_ui(home, "--database", "no such url"))
    assert "is not a valid SQLAlchemy database URL" in line
    line = _error(_ui(home))
    assert "There is no SQLite database at" in line
    assert not home.exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    line = _error(_ui(home, "--database", f"sqlite:///{empty}"))
    assert "holds no event store" in line
    assert empty.stat().st_size == 0
    line = _error(_ui(home, "--database", "postgresql://ui:hunter2@127.0.0.1:1/events"))
    assert "Cannot read events from postgresql" in line
    assert "hunter2" not in line


def test_without_the_ui_extra_it_names_the_extra(
    home: tuple[Path, str], tmp_path: Path
) -> None:
    """With starlette missing, the command says which extra to install, and the
    other commands still work."""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "starlette.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'starlette'\", name='starlette')\n"
    )
    path = os.pathsep.join([str(hidden), os.environ.get("PYTHONPATH", "")])
    line = _error(_ui(home[0], PYTHONPATH=path))
    assert "pip install 'eventblocks[ui]'" in line
    listed = subprocess.run(
        [sys.executable, "-m", "blocks", "runs", "ls"],
        capture_output=True, text=True, env=_env(home[0], PYTHONPATH=path),
        timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert "evening" in listed.stdout
