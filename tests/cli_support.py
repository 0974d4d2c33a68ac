"""Running the real CLI in tests: a command that must succeed, and one that must fail cleanly."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from orchestrion.cli import app, main

runner = CliRunner()


def run_ok(*args: object) -> str:
    """Run ``orchestrion ARGS`` in-process; it must exit 0. Returns its output."""
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def run_fails(capsys: pytest.CaptureFixture, *args: object) -> str:
    """Run ``orchestrion ARGS`` through the real entry point: a user error must exit 2 with one clean
    ``error:`` line and no traceback. Returns standard error with its whitespace folded."""
    old = sys.argv
    sys.argv = ["orchestrion", *map(str, args)]
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        sys.argv = old
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "error:" in err and "Traceback" not in err
    return " ".join(err.split())
