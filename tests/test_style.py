"""The one formatter and linter: every Python file in the repository is formatted by ruff and
clean under `ruff check` (configured in pyproject.toml), so CI enforces both."""

import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.parametrize("command", [["format", "--check"], ["check"]], ids=["format", "check"])
def test_ruff_is_clean(command):
    """Catches a file that is not ruff-formatted or has a lint finding: a line over 100 characters,
    two statements on one line (E70x), an unused import, a zip of unequal lengths (B905)..."""
    run = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "."], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
