"""The console script and the help of every registered command."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import typer.main
from typer.testing import CliRunner

from orchestrion import __version__
from orchestrion.cli import app


def _command_paths(command, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    if hasattr(command, "commands"):  # a group (typer's own click fork in recent versions)
        for name, sub in command.commands.items():
            paths += _command_paths(sub, (*prefix, name))
    return paths


ROOT = typer.main.get_command(app)
ALL_COMMANDS = _command_paths(ROOT)


def _is_leaf(path: tuple[str, ...]) -> bool:
    command = ROOT
    for name in path:
        command = command.commands[name]
    return not hasattr(command, "commands")


def test_console_script_runs():
    exe = shutil.which("orchestrion")
    assert exe, "the orchestrion console script is not installed"
    result = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"orchestrion {__version__}"


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "orchestrion")
def test_help_of_every_command(path):
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    if path and _is_leaf(path):  # every command explains itself with examples
        assert "Example" in result.output, f"`orchestrion {' '.join(path)} --help` shows no example"


def test_info_prints_versions_and_device():
    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 0
    assert "torch threads" in result.output and "device" in result.output


@pytest.mark.parametrize("path", [p for p in ALL_COMMANDS if p and _is_leaf(p)], ids=" ".join)
def test_help_reads_like_a_command_line(path):
    """Flags take no value, arguments are CAPITALS, and no help cites the project's internal spec."""
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    usage = next(line for line in result.output.splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage, usage
    command = ROOT
    for name in path:
        command = command.commands[name]
    for param in command.params:
        if param.param_type_name == "argument":
            assert param.name.upper() in usage, usage
    assert "spec §" not in result.output
