"""Bad input, command line: whatever the arguments or the environment, the CLI
ends with one ``Error:`` line and status 1 or 2, never a traceback, never a secret.

Property-based (hypothesis) in-process runs of ``blocks._cli.app.main`` over argument
lists drawn from the real commands and options mixed with hostile values (odd
Unicode, lone surrogates as Linux gives undecodable bytes, huge numbers, bad
durations, files that do not parse), then real ``python -m blocks`` processes for
a hostile environment (a malformed or unreachable database, a home that is a file,
a corrupt database file, a malformed encryption key, undecodable argument bytes).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blocks._cli.app import main
from blocks.system import JSON, Secret, String
from emitters import configure, flow_run, flush
from emitters.sql import SQLEventStore

COMMANDS = [
    [],
    ["ls"],
    ["type"],
    ["type", "ls"],
    ["type", "inspect"],
    ["type", "delete"],
    ["inspect"],
    ["create"],
    ["delete"],
    ["register"],
    ["events"],
    ["events", "ls"],
    ["events", "runs"],
    ["events", "timeline"],
    ["no-such-command"],
]
OPTIONS = [
    "--json",
    "--type",
    "--block",
    "--flow-run",
    "--name",
    "--failed",
    "--since",
    "--limit",
    "--set",
    "-s",
    "--from-json",
    "--overwrite",
    "--force",
    "-m",
    "-f",
    "--help",
    "-h",
    "--version",
    "--",
    "-",
]
# Free text starts with a character no module name has, so "-m <text>" can never
# import a real module.
FREE_TEXT = st.text(max_size=20).map(lambda s: f"\u00a4{s}")
ADDRESSES = st.sampled_from(
    [
        "string/landing",
        "secret/api-token",
        "json/settings",
        "string/nope",
        "string",
        "string/",
        "/landing",
        "a/b/c",
        "secret/api-token/x",
        "no-such-type/x",
        "String/Landing",
    ]
)
PAIRS = st.builds(
    "{}={}".format,
    st.sampled_from(["value", "values", "", "value.x", "=", "v"]),
    st.one_of(FREE_TEXT, st.sampled_from(["", "null", "[1, 2", '{"a": 1}', "1e999"])),
)
NUMBERS = st.integers().map(str) | st.sampled_from(["0", "-1", "1e3", "NaN", "10" * 30])
DURATIONS = st.sampled_from(["1h", "30m", "1h30m", "0s", "-1h", "9" * 30 + "w", "h"])
VALUES = st.one_of(FREE_TEXT, ADDRESSES, PAIRS, NUMBERS, DURATIONS)
TEXT_20 = st.text(max_size=20)


@st.composite
def _argv(draw: st.DrawFn, files: list[str]) -> list[str]:
    command = list(draw(st.sampled_from(COMMANDS)))
    words = st.one_of(st.sampled_from(OPTIONS), VALUES, st.sampled_from(files))
    return command + draw(st.lists(words, max_size=6))


@pytest.fixture
def populated(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A home with documents, stored events and hostile files; yields the secret."""
    token = f"tok-{secrets.token_hex(8)}"
    configure(emitters=[SQLEventStore()])
    String(value="raw-data").save("landing")
    Secret(value=token).save("api-token")
    JSON(value={"batch": 500}).save("settings")
    with flow_run("nightly", id="run-1"):
        Secret.load("api-token").get()
        String.load("landing").get()
    assert flush(10)
    files = {
        "blocks_ok.py": (
            "from blocks import Block\n\n"
            "class ReliabilityCart(Block):\n    n: int = 1\n"
        ),
        "syntax_error.py": "def broken(:\n",
        "raises.py": "raise RuntimeError('module refuses to load')\n",
        "binary.bin": "\x00\x01\x02\xff",
        "values.json": '{"value": "from-file"}',
        "not_an_object.json": "[1, 2, 3]",
        "bad.json": "{value: ",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "a-folder").mkdir()
    paths = [str(tmp_path / name) for name in [*files, "a-folder", "missing.py"]]
    yield token, paths
    configure(emitters=[])


def _check_run(argv: list[str], token: str, out: str, err: str, status: int) -> None:
    assert status in (0, 1, 2), (argv, status, err)
    assert "Traceback" not in out + err, (argv, err)
    assert token not in out + err, argv
    if status != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines, (argv, status)
        assert lines[-1].startswith("Error: "), (argv, err)


def test_arguments_never_produce_a_traceback(
    populated: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """Any argument list ends with status 0, 1 or 2 and at most an Error: line."""
    token, files = populated
    seen: set[int] = set()

    @given(_argv(files))
    @settings(max_examples=300)
    def run(argv: list[str]) -> None:
        status = main(argv)
        out, err = capsys.readouterr()
        _check_run(argv, token, out, err, status)
        seen.add(status)

    run()
    # The arguments reached every kind of outcome, not only usage errors.
    assert seen == {0, 1, 2}


# The secret registry is process-wide: a secret value made of a unique prefix and
# hostile text masks only itself in later tests.
SECRET_PAIRS = st.builds(
    "value=sec-{}{}".format, st.binary(min_size=8, max_size=8).map(bytes.hex), TEXT_20
)


@given(
    st.sampled_from(["string", "secret", "json", "no-such-type"]),
    st.text(max_size=12),
    st.data(),
)
@settings(max_examples=80)
def test_create_with_any_values_never_produces_a_traceback(
    capsys: pytest.CaptureFixture[str], slug: str, name: str, data: st.DataObject
) -> None:
    """create with any slug, name and --set values saves or fails with one line."""
    plain = PAIRS | st.builds("value={}".format, TEXT_20)
    pairs = data.draw(st.lists(SECRET_PAIRS if slug == "secret" else plain, max_size=3))
    argv = ["create", slug, name, "--overwrite"]
    for pair in pairs:
        argv += ["--set", pair]
    status = main(argv)
    out, err = capsys.readouterr()
    secret_values = [p.split("=", 1)[1] for p in pairs] if slug == "secret" else []
    _check_run(argv, "tok-never-printed", out, err, status)
    for value in secret_values:
        assert value not in out + err


# -- real processes in a hostile environment --------------------------------------

PASSWORD = f"pw-{secrets.token_hex(6)}"
KEY_TEXT = f"not-a-fernet-key-{secrets.token_hex(6)}"


def _cli(
    args: list[str] | list[bytes], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "blocks", *args],
        capture_output=True,
        timeout=60,
        env=env,
        cwd=cwd,
        check=False,
    )


def _environment(tmp_path: Path, **settings_: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTBLOCKS_")}
    env["EVENTBLOCKS_HOME"] = str(tmp_path / "home")
    env.update(settings_)
    return env


def _hostile_cases(tmp_path: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    home_file = tmp_path / "home-is-a-file"
    home_file.write_text("not a folder")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "eventblocks.db").write_bytes(b"SQLite format 2\x00" + b"\xff" * 4096)
    return {
        "malformed database URL": (
            ["ls"],
            {"EVENTBLOCKS_DATABASE_URL": f"::not a url:{PASSWORD}@"},
        ),
        "unreachable database": (
            ["events", "ls"],
            {
                "EVENTBLOCKS_DATABASE_URL": (
                    f"postgresql+psycopg://etl:{PASSWORD}@127.0.0.1:9/x"
                    "?connect_timeout=2"
                )
            },
        ),
        "home is a file": (["ls"], {"EVENTBLOCKS_HOME": str(home_file)}),
        "corrupt database file": (
            ["events", "timeline", "--flow-run", "x"],
            {"EVENTBLOCKS_HOME": str(corrupt)},
        ),
        "malformed encryption key": (
            ["create", "secret", "api", "--set", f"value={PASSWORD}"],
            {"EVENTBLOCKS_ENCRYPTION_KEY": KEY_TEXT},
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "malformed database URL",
        "unreachable database",
        "home is a file",
        "corrupt database file",
        "malformed encryption key",
    ],
)
def test_a_hostile_environment_is_one_error_line(tmp_path: Path, case: str) -> None:
    """A bad database, home or key: status 1, one Error: line, nothing secret."""
    args, settings_ = _hostile_cases(tmp_path)[case]
    done = _cli(args, _environment(tmp_path, **settings_), tmp_path)
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 1, err
    assert b"Traceback" not in done.stdout + done.stderr
    assert err.strip().splitlines()[-1].startswith("Error: ")
    assert PASSWORD not in err
    assert KEY_TEXT not in err


HOSTILE_MODULES = {
    "syntax error": "def broken(:\n",
    "raises at import": "raise RuntimeError('module refuses to load')\n",
    "clashing slug": textwrap.dedent(
        """
        from typing import ClassVar
        from blocks import Block
        from blocks.system import Secret

        class Impostor(Block):
            block_type_slug: ClassVar[str] = "secret"
        """
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_MODULES))
def test_registering_a_hostile_file_is_one_error_line(
    tmp_path: Path, case: str
) -> None:
    """register -f on a file that breaks, raises or exits: one Error: line."""
    script = tmp_path / "hostile.py"
    script.write_text(HOSTILE_MODULES[case], encoding="utf-8")
    done = _cli(["register", "-f", str(script)], _environment(tmp_path), tmp_path)
    assert b"Traceback" not in done.stdout + done.stderr
    assert done.returncode in (1, 2), done.stderr
    err = done.stderr.decode("utf-8", "replace").strip()
    assert err.splitlines()[-1].startswith("Error: "), err


def test_undecodable_argument_bytes_are_one_error_line(tmp_path: Path) -> None:
    """Arguments that are not UTF-8 (as a Linux shell may pass) never crash the CLI."""
    env = _environment(tmp_path)
    for args in (
        [b"inspect", b"string/caf\xe9"],
        [b"events", b"ls", b"--name", b"\xff*"],
        [b"create", b"string", b"caf\xe9", b"--set", b"value=\xff"],
    ):
        done = _cli(args, env, tmp_path)
        assert b"Traceback" not in done.stdout + done.stderr, args
        assert done.returncode in (0, 1, 2), done.stderr
        if done.returncode:
            assert done.stderr.strip().splitlines()[-1].startswith(b"Error: ")
