"""The one formatter and linter: every Python file in the repository is formatted by ruff and
clean under `ruff check` (configured in pyproject.toml), so CI enforces both. And every test
says which bug it catches."""

import ast
import os
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


def test_every_test_says_which_bug_it_catches():
    """Catches a test added without saying what it guards against: each test function's docstring
    starts with "Catches", so a reader (and a reviewer) can tell what would make it fail."""
    silent = []
    for name in sorted(os.listdir(os.path.join(ROOT, "tests"))):
        if not (name.startswith("test_") and name.endswith(".py")):
            continue
        with open(os.path.join(ROOT, "tests", name)) as f:
            tree = ast.parse(f.read())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                doc = ast.get_docstring(node) or ""
                if not doc.startswith("Catches"):
                    silent.append(f"{name}::{node.name}")
    assert silent == []
