"""The ``eventblocks`` command line, run as a user runs it: in a subprocess.

Each test has its own EVENTBLOCKS_HOME (the conftest fixture sets it in
``os.environ``, which the subprocesses inherit) and writes the module of block types
it registers into its tmp folder, which goes on PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from blocks._documents.crypto import SecretCipher
from blocks._documents.operations import SECRET
from blocks._documents.store import DocumentStore

DSN = "postgresql://etl:dsn-pa55word@warehouse.internal/analytics"
PASSWORD = "login-pa55word"
MASK = "**********"

SHOP_MODULE = textwrap.dedent(
    '''
    """Block types for the CLI tests."""

    from pydantic import SecretStr

    from blocks import Block


    class ShopLogin(Block):
        """A login for the shop database."""

        user: str
        password: SecretStr


    class ShopWarehouse(Block):
        """The shop's warehouse."""

        dsn: SecretStr
        port: int = 5432
        ssl: bool = False
        options: dict[str, int] = {}
        label: str = "main"
        login: ShopLogin | None = None

        def query(self, sql: str) -> list[dict]:
            return []

        async def aquery(self, sql: str) -> list[dict]:
            return []
    '''
)


def _command(args: tuple[str, ...], command: list[str] | None) -> list[str]:
    return [*(command or [sys.executable, "-m", "blocks"]), *args]


class Cli:
    """Runs ``python -m blocks`` with the test's home and module folder."""

    def __init__(self, folder: Path, home: str | None = None) -> None:
        self.folder = folder
        self.home = home
        (folder / "shop_types.py").write_text(SHOP_MODULE, encoding="utf-8")

    def env(self) -> dict[str, str]:
        """This process's environment (with the test's home) plus the module folder."""
        env = os.environ.copy()
        if self.home is not None:
            # A module-scoped fixture runs before conftest clears these settings.
            env["EVENTBLOCKS_HOME"] = self.home
            env.pop("EVENTBLOCKS_DATABASE_URL", None)
            env.pop("EVENTBLOCKS_ENCRYPTION_KEY", None)
        paths = [str(self.folder), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        return env

    def __call__(
        self, *args: str, command: list[str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run one command headless (stdin is not a terminal) and capture it."""
        return self.all([*args], command=command)[0]

    def all(
        self, *commands: list[str], command: list[str] | None = None
    ) -> list[subprocess.CompletedProcess[str]]:
        """Run independent commands side by side (each costs an interpreter start)."""
        children = [
            subprocess.Popen(
                _command(tuple(args), command),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                env=self.env(),
                cwd=self.folder,
            )
            for args in commands
        ]
        results = []
        for child in children:
            out, err = child.communicate(timeout=60)
            results.append(
                subprocess.CompletedProcess(child.args, child.returncode, out, err)
            )
        return results

    def ok(self, *args: str) -> str:
        """Run a command that must succeed; return its stdout."""
        result = self(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        return result.stdout

    def json(self, *args: str) -> Any:
        """Run a command with ``--json`` and return the parsed output."""
        return json.loads(self.ok(*args, "--json"))


def error_line(result: subprocess.CompletedProcess[str], status: int) -> str:
    """Assert the command failed with ``status`` and one clean line; return it."""
    assert result.returncode == status, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A CLI runner whose folder holds ``shop_types.py``; nothing registered."""
    return Cli(tmp_path)


@pytest.fixture(scope="module")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home where the CLI registered shop_types and created shop-login/ops.

    Built once for the module and copied into each test's home: registering in
    every test would cost an interpreter start each.
    """
    folder = tmp_path_factory.mktemp("template")
    home = folder / "home"
    runner = Cli(folder, home=str(home))
    runner.ok("register", "-m", "shop_types")
    runner.ok(
        "create",
        "shop-login",
        "ops",
        "--set",
        "user=ops",
        "--set",
        f"password={PASSWORD}",
    )
    return home


@pytest.fixture
def shop(cli: Cli, template_home: Path, eventblocks_home: Path) -> Cli:
    """The runner, in a home where shop_types is registered and shop-login/ops saved."""
    shutil.copytree(template_home, eventblocks_home)
    return cli


def test_console_script_prints_version_and_help(cli: Cli) -> None:
    """The installed ``eventblocks`` script prints its version; no command is help."""
    script = shutil.which("eventblocks", path=str(Path(sys.executable).parent))
    assert script is not None, "the eventblocks console script is not installed"
    version, bare = cli.all(["--version"], [], command=[script])
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("eventblocks ")
    assert bare.returncode == 0, bare.stderr
    for command in ("register", "ls", "inspect", "create", "delete", "type"):
        assert command in bare.stdout
    assert "events" in bare.stdout.split()


def test_register_module_records_its_types(cli: Cli) -> None:
    """``register -m`` records every type of the module; ``type ls`` lists them."""
    registered = cli.json("register", "-m", "shop_types")
    assert {t["slug"]: t["class_path"] for t in registered} == {
        "shop-login": "shop_types:ShopLogin",
        "shop-warehouse": "shop_types:ShopWarehouse",
    }
    listed = [t for t in cli.json("type", "ls") if not t["built_in"]]
    assert [(t["slug"], t["documents"]) for t in listed] == [
        ("shop-login", 0),
        ("shop-warehouse", 0),
    ]
    assert listed[1]["description"] == "The shop's warehouse."


def test_register_file_and_its_failures(cli: Cli) -> None:
    """``register -f`` runs a file; a file that raises is one error line, exit 1."""
    types_file = cli.folder / "more_types.py"
    types_file.write_text(
        "from blocks import Block\n\nclass Bucket(Block):\n    name: str\n",
        encoding="utf-8",
    )
    broken = cli.folder / "broken.py"
    broken.write_text("raise RuntimeError('no config here')\n", encoding="utf-8")
    good, bad = cli.all(
        ["register", "-f", str(types_file), "--json"], ["register", "-f", str(broken)]
    )
    assert good.returncode == 0, good.stderr
    registered = json.loads(good.stdout)
    assert [t["slug"] for t in registered] == ["bucket"]
    assert registered[0]["class_path"].startswith("file:")
    assert "RuntimeError: no config here" in error_line(bad, 1)


def test_type_inspect_from_the_class(shop: Cli) -> None:
    """``type inspect`` lists fields, secrets, defaults, capabilities, checksum."""
    as_json, human = shop.all(
        ["type", "inspect", "shop-warehouse", "--json"],
        ["type", "inspect", "shop-warehouse"],
    )
    assert as_json.returncode == human.returncode == 0, as_json.stderr + human.stderr
    info = json.loads(as_json.stdout)
    assert info["source"] == "class"
    assert info["class_path"] == "shop_types:ShopWarehouse"
    assert info["capabilities"] == ["aquery", "query"]
    assert info["checksum"] == info["stored_checksum"]
    assert len(info["checksum"]) == 64
    fields = {f["name"]: f for f in info["fields"]}
    assert fields["dsn"]["secret"] is True
    assert fields["dsn"]["required"] is True
    assert fields["port"]["default"] == 5432
    assert fields["port"]["type"] == "int"
    assert fields["login"]["block_type"] == "shop-login"
    assert "shop_types:ShopWarehouse" in human.stdout
    assert "aquery, query" in human.stdout


def test_type_inspect_from_the_stored_schema(shop: Cli) -> None:
    """Without an importable class, ``type inspect`` describes the stored schema."""
    (shop.folder / "shop_types.py").unlink()
    info = shop.json("type", "inspect", "shop-login")
    assert info["source"] == "stored schema"
    assert info["documents"] == 1
    fields = {f["name"]: f for f in info["fields"]}
    assert fields["password"] == {
        "name": "password",
        "type": "SecretStr",
        "required": True,
        "default": None,
        "secret": True,
        "block_type": None,
        "description": None,
    }
    assert fields["user"]["type"] == "str"


def test_type_delete_refuses_documents_unless_forced(shop: Cli) -> None:
    """``type delete`` fails while documents exist; ``--force`` deletes them too."""
    line = error_line(shop("type", "delete", "shop-login"), 1)
    assert "1 document(s)" in line
    assert "--force" in line
    assert "and its 1 document(s)" in shop.ok("type", "delete", "shop-login", "--force")
    listed = [t for t in shop.json("type", "ls") if not t["built_in"]]
    assert [(t["slug"], t["documents"]) for t in listed] == [("shop-warehouse", 0)]


def test_create_with_typed_set_values_and_a_reference(shop: Cli) -> None:
    """``--set`` types values by field and references a saved nested document."""
    created = shop.json(
        "create",
        "shop-warehouse",
        "prod",
        "--set",
        f"dsn={DSN}",
        "--set",
        "port=6543",
        "--set",
        "ssl=true",
        "--set",
        'options={"pool": 4}',
        "--set",
        "label=12",
        "--set",
        "login=shop-login/ops",
    )
    assert created["address"] == "shop-warehouse/prod"
    shown = shop.json("inspect", "shop-warehouse/prod")
    assert shown["id"] == created["id"]
    assert shown["fields"] == {
        "dsn": MASK,
        "port": 6543,
        "ssl": True,
        "options": {"pool": 4},
        "label": "12",
        "login": "shop-login/ops",
    }
    assert shown["secret_fields"] == ["dsn"]
    assert shown["references"] == {"login": "shop-login/ops"}
    record = DocumentStore().get_document("shop-warehouse", "prod")
    login = DocumentStore().get_document("shop-login", "ops")
    assert record is not None
    assert login is not None
    assert record.references == {"login": login.id}
    token = record.data["dsn"][SECRET]
    plain = SecretCipher().decrypt(token, document="shop-warehouse/prod", field="dsn")
    assert json.loads(plain) == DSN


def test_inspect_and_ls_never_show_a_secret(shop: Cli) -> None:
    """``inspect`` (table and JSON) and ``ls`` mask secrets everywhere."""
    human, as_json, listing = shop.all(
        ["inspect", "shop-login/ops"],
        ["inspect", "shop-login/ops", "--json"],
        ["ls"],
    )
    for result in (human, as_json, listing):
        assert result.returncode == 0, result.stderr
        assert PASSWORD not in result.stdout + result.stderr
    assert MASK in human.stdout
    shown = json.loads(as_json.stdout)
    assert shown["fields"] == {"user": "ops", "password": MASK}
    assert shown["secret_fields"] == ["password"]
    assert set(shown) >= {"id", "created", "updated", "address", "schema_checksum"}
    assert "shop-login/ops" in listing.stdout


def test_create_from_json_and_ls_by_type(shop: Cli) -> None:
    """``--from-json`` takes a JSON object; ``ls --type`` keeps that type."""
    values = shop.folder / "prod.json"
    values.write_text(
        json.dumps({"dsn": DSN, "port": 7000, "login": "shop-login/ops"}),
        encoding="utf-8",
    )
    shop.ok("create", "shop-warehouse", "prod", "--from-json", str(values))
    listed, shown = shop.all(
        ["ls", "--type", "shop-warehouse", "--json"],
        ["inspect", "shop-warehouse/prod", "--json"],
    )
    documents = json.loads(listed.stdout)
    assert [(d["address"], d["block_type"], d["name"]) for d in documents] == [
        ("shop-warehouse/prod", "shop-warehouse", "prod")
    ]
    assert set(documents[0]) == {
        "id",
        "name",
        "block_type",
        "address",
        "created",
        "updated",
    }
    document = json.loads(shown.stdout)
    assert document["fields"]["port"] == 7000
    assert document["references"] == {"login": "shop-login/ops"}


def test_create_headless_missing_field_and_bad_value(shop: Cli) -> None:
    """Without a terminal a missing field fails naming it; a bad value too, masked."""
    missing, bad = shop.all(
        ["create", "shop-warehouse", "prod", "--set", "port=1"],
        [
            "create",
            "shop-warehouse",
            "prod",
            "--set",
            f"dsn={DSN}",
            "--set",
            "port=abc",
        ],
    )
    assert "'dsn'" in error_line(missing, 1)
    line = error_line(bad, 1)
    assert "port" in line
    assert "abc" not in line
    assert DSN not in bad.stdout + bad.stderr
    assert DocumentStore().get_document("shop-warehouse", "prod") is None


def test_existing_name_needs_overwrite(shop: Cli) -> None:
    """A taken name fails with a hint; ``--overwrite`` replaces the document."""
    args = ["create", "shop-login", "ops", "--set", "user=b", "--set", "password=y"]
    line = error_line(shop(*args), 1)
    assert "exists already" in line
    assert "--overwrite" in line
    shop.ok(*args, "--overwrite")
    assert shop.json("inspect", "shop-login/ops")["fields"]["user"] == "b"


def test_delete_and_unknown_document(shop: Cli) -> None:
    """An unknown document suggests the close name; ``delete`` removes it."""
    line = error_line(shop("inspect", "shop-login/osp"), 1)
    assert line == (
        "Error: There is no shop-login document named 'osp'. Did you mean 'ops'?"
    )
    assert "Deleted shop-login/ops." in shop.ok("delete", "shop-login/ops")
    assert "no shop-login documents" in error_line(shop("delete", "shop-login/ops"), 1)


def test_unknown_type_and_malformed_address(shop: Cli) -> None:
    """Unknown types, fields and references suggest names; bad addresses explain."""
    listing, creating, address, field, reference = shop.all(
        ["ls", "--type", "shop-warehous"],
        ["create", "shop-warehous", "x", "--set", "a=1"],
        ["inspect", "just-a-name"],
        ["create", "shop-login", "x", "--set", "usr=a"],
        ["create", "shop-warehouse", "x", "--set", f"dsn={DSN}", "--set", "login=osp"],
    )
    assert "Did you mean 'shop-warehouse'?" in error_line(listing, 1)
    assert "'shop-warehous'" in error_line(creating, 1)
    assert "'block-type/name'" in error_line(address, 1)
    assert "did you mean 'user'?" in error_line(field, 1)
    line = error_line(reference, 1)
    assert "Field 'login' of shop-warehouse" in line
    assert "Did you mean 'ops'?" in line


USAGE_ERRORS = {
    "No such command": ["frobnicate"],
    "--bogus": ["ls", "--bogus"],
    "Missing argument": ["inspect"],
    "has no '='": ["create", "shop-login", "x", "--set", "hunter2"],
    "not both": ["create", "shop-login", "x", "--set", "a=1", "--from-json", "f.json"],
    "-m MODULE or -f FILE": ["register"],
}


def test_usage_errors_exit_2(cli: Cli) -> None:
    """Bad usage exits 2 with one line naming the problem, and echoes no value."""
    results = cli.all(*USAGE_ERRORS.values())
    for (fragment, args), result in zip(USAGE_ERRORS.items(), results, strict=True):
        assert fragment in error_line(result, 2), args
        assert "hunter2" not in result.stdout + result.stderr


def test_debug_shows_the_traceback_without_the_secret(shop: Cli) -> None:
    """``--debug`` adds the traceback before the error line; no secret in either."""
    result = shop(
        "--debug",
        "create",
        "shop-warehouse",
        "p",
        "--set",
        f"dsn={DSN}",
        "--set",
        "port=x",
    )
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "BlockValidationError" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert "dsn-pa55word" not in result.stdout + result.stderr


def _read_until(master: int, output: bytearray, marker: bytes, timeout: float) -> bool:
    """Read the terminal into ``output`` until ``marker`` shows (False on timeout)."""
    deadline = time.monotonic() + timeout
    while marker not in output and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if not ready:
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    return marker in output


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_prompts_for_a_missing_secret_on_a_terminal(shop: Cli) -> None:
    """On a terminal, missing fields are asked for; the secret is not echoed."""
    import termios

    master, replica = os.openpty()
    output = bytearray()
    # A new session has no controlling terminal, so getpass uses stdin (this pty)
    # instead of the terminal that runs pytest.
    child = subprocess.Popen(
        [sys.executable, "-m", "blocks", "create", "shop-login", "reporting"],
        stdin=replica,
        stdout=replica,
        stderr=replica,
        env=shop.env(),
        cwd=shop.folder,
        start_new_session=True,
    )
    os.close(replica)
    try:
        assert _read_until(master, output, b"user (str):", 30), output
        os.write(master, b"alice\n")
        assert _read_until(master, output, b"password (SecretStr, secret):", 30), output
        # Wait until the prompt turned echo off: getpass discards what was typed
        # before that, as a terminal user could not have typed it yet either.
        deadline = time.monotonic() + 30
        while termios.tcgetattr(master)[3] & termios.ECHO:
            assert time.monotonic() < deadline, "echo was never turned off"
            time.sleep(0.02)
        os.write(master, PASSWORD.encode() + b"\n")
        assert _read_until(master, output, b"Saved shop-login/reporting", 30), output
        assert child.wait(timeout=30) == 0
        _read_until(master, output, b"\x00", 0.2)  # whatever is left
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        os.close(master)
    text = output.decode("utf-8", "replace")
    assert "alice" in text  # typed input is echoed, so the check below can fail
    assert PASSWORD not in text
    record = DocumentStore().get_document("shop-login", "reporting")
    assert record is not None
    assert record.data["user"] == "alice"
    token = record.data["password"][SECRET]
    plain = SecretCipher().decrypt(
        token, document="shop-login/reporting", field="password"
    )
    assert json.loads(plain) == PASSWORD
