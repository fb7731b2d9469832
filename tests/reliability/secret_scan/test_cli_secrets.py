"""Secret scan of the command line: every CLI command on documents and events that
hold secrets, succeeding and failing, in table and JSON form, each in a fresh
process; zero hits in its output or anywhere else (see conftest.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from blocks import Block
from emitters import flow_run, flush


def attempt(call: Callable[[], Any]) -> None:
    """Make a call that may fail: its failure is part of what is scanned."""
    try:
        result = call()
        if asyncio.iscoroutine(result):
            asyncio.run(result)
    except Exception as exc:  # the caller's own exception is not an output
        del exc


def test_cli_commands_leak_nothing(scan: Any, tmp_path: Path) -> None:
    """Every CLI command, succeeding and failing, table and JSON: no secret."""
    import subprocess
    import sys

    from pydantic import SecretStr

    from blocks.system import Secret

    token = scan.add("cli-secret")
    db_password = scan.add("cli-db-password")
    bearer = scan.add("cli-bearer")
    api_key = scan.add("cli-api-key")
    hook = scan.add("cli-hook", plain=True)
    aws_key = scan.add("cli-aws-secret")
    typo = scan.add("cli-typo")
    in_code = scan.add("code-secret")

    class CliVault(Block):
        """Fails with its secret in the message."""

        password: SecretStr

        def open(self) -> None:
            raise PermissionError(f"{self.password.get_secret_value()} was refused")

    Secret(value=in_code).save("in-code")
    CliVault(password=in_code).save("vault")
    with flow_run("cli", id="run-cli"):
        Secret.load("in-code").get()
        attempt(CliVault.load("vault").open)
    # False while the down endpoint's spool waits; the home store has them all.
    flush(10)
    commands: list[tuple[list[str], str | None]] = [
        (
            ["create", "secret", "cli-token", "--from-json", "-"],
            json.dumps({"value": token}),
        ),
        (
            ["create", "secret", "cli-token", "--from-json", "-"],
            json.dumps({"value": token}),
        ),
        (
            [
                "create",
                "database-credentials",
                "cli-db",
                "--set",
                "driver=postgresql+psycopg",
                "--set",
                "username=etl",
                "--set",
                f"password={db_password}",
                "--set",
                "host=db.internal",
                "--set",
                "port=not-a-port",
            ],
            None,
        ),
        (
            [
                "create",
                "database-credentials",
                "cli-db",
                "--set",
                "driver=postgresql+psycopg",
                "--set",
                "username=etl",
                "--set",
                f"password={db_password}",
                "--set",
                "host=db.internal",
            ],
            None,
        ),
        (
            [
                "create",
                "http-endpoint",
                "cli-api",
                "--set",
                "base_url=http://127.0.0.1:9/v1",
                "--set",
                json.dumps({"kind": "bearer", "token": bearer}).join(["auth=", ""]),
                "--set",
                "headers=" + json.dumps({"X-Api-Key": api_key}),
            ],
            None,
        ),
        (
            [
                "create",
                "webhook",
                "cli-hook",
                "--set",
                f"url=http://127.0.0.1:9/h/{hook}",
            ],
            None,
        ),
        (
            [
                "create",
                "aws-credentials",
                "cli-aws",
                "--set",
                "aws_access_key_id=AKIACLICLICLI",
                "--set",
                f"aws_secret_access_key={aws_key}",
            ],
            None,
        ),
        (
            ["create", "secret", "typo", "--set", f"value={typo}", "--set", "nope=1"],
            None,
        ),
        (
            [
                "--debug",
                "create",
                "secret",
                "typo",
                "--set",
                f"value={typo}",
                "--set",
                "x=1",
            ],
            None,
        ),
        (["--debug", "create", "secret", "typo", "--set", f"valeu={typo}"], None),
    ]
    # Commands that only read run in one fresh process, one after the other: they
    # register no secret, so each sees what a process of its own would.
    reads: list[list[str]] = [["ls"], ["ls", "--json"], ["type", "ls", "--json"]]
    for address in (
        "secret/cli-token",
        "database-credentials/cli-db",
        "http-endpoint/cli-api",
        "webhook/cli-hook",
        "aws-credentials/cli-aws",
        "cli-vault/vault",
    ):
        reads += [["inspect", address], ["inspect", address, "--json"]]
        reads += [["type", "inspect", address.split("/")[0], "--json"]]
    for flag in ([], ["--json"]):
        reads += [
            ["events", "ls", "--limit", "500", *flag],
            ["events", "ls", "--failed", *flag],
            ["events", "runs", "--block", "cli-vault/vault", *flag],
            ["events", "timeline", "--flow-run", "run-cli", *flag],
        ]
    reader = (
        "import json, sys\n"
        "from blocks._cli.app import main\n"
        "for args in json.loads(sys.argv[1]):\n"
        "    print('$', *args, flush=True)\n"
        "    print('status', main(args), flush=True)\n"
    )
    runs = [[sys.executable, "-m", "blocks", *args] for args, _ in commands]
    inputs = [stdin for _, stdin in commands]
    runs.append([sys.executable, "-c", reader, json.dumps(reads)])
    inputs.append(None)
    runs.append([sys.executable, "-m", "blocks", "delete", "secret/cli-token"])
    inputs.append(None)
    for number, (argv, stdin) in enumerate(zip(runs, inputs, strict=True)):
        done = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            check=False,
        )
        assert "Traceback" not in done.stdout + done.stderr or "--debug" in argv
        output = (done.stdout + done.stderr).encode()
        scan.outputs[f"cli run {number}"] = lambda output=output: output
        if argv[1] == "-c":  # every read worked: the scan saw real output
            assert done.stdout.count("status 0") == len(reads), done.stderr
    scan.assert_clean()
