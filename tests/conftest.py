import glob
import os
import sys

import pytest

# The scripts live at the repository root; make them importable as modules from tests.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """Run wandb offline into tmp_path; returns a function that reads the one run it wrote.

    wandb reads WANDB_DIR once per process, when it is first set up, so the setup is torn
    down afterwards: the next test that tracks gets its own directory."""
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    wandb.teardown()

    def the_run() -> bytes:
        runs = glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "*.wandb"))
        assert len(runs) == 1, runs
        return open(runs[0], "rb").read()

    yield the_run
    wandb.teardown()
