import glob
import os
import sys
import types

import gymnasium as gym
import numpy as np
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
        wandb.teardown()  # waits for wandb's service to write out everything the run logged
        runs = glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "*.wandb"))
        assert len(runs) == 1, runs
        return open(runs[0], "rb").read()

    yield the_run
    wandb.teardown()


@pytest.fixture
def fake_wandb(monkeypatch) -> types.SimpleNamespace:
    """A stand-in for the wandb module: `inits` holds wandb.init's arguments, `logged` each dict
    logged."""
    fake = types.SimpleNamespace(inits=[], logged=[])
    fake.init = lambda **kwargs: fake.inits.append(kwargs)
    fake.run = types.SimpleNamespace(id="abc123")
    fake.config = types.SimpleNamespace(update=lambda *args, **kwargs: None)
    fake.define_metric = lambda *args, **kwargs: None
    fake.log = lambda metrics: fake.logged.append(dict(metrics))
    fake.finish = lambda: None
    monkeypatch.setitem(sys.modules, "wandb", fake)
    return fake


# --- toy envs that each script must refuse with a clear error ---
class MultiDiscreteToy(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,))
    action_space = gym.spaces.MultiDiscrete([2, 3])

    def reset(self, seed=None, options=None):
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, True, False, {}


class DictObsToy(MultiDiscreteToy):
    observation_space = gym.spaces.Dict({"a": gym.spaces.Box(-1, 1, (2,))})
    action_space = gym.spaces.Discrete(2)


class NeedsMissingPackageToy(MultiDiscreteToy):
    def __init__(self):
        raise gym.error.DependencyNotInstalled(
            "FakeSim is not installed, run `pip install fakesim`"
        )


# With a time limit, as reinforce.py only plays episodes that end.
gym.register("rlref/MultiDiscreteToy-v0", entry_point=MultiDiscreteToy, max_episode_steps=10)
gym.register(
    "rlref/NeedsMissingPackageToy-v0", entry_point=NeedsMissingPackageToy, max_episode_steps=10
)
gym.register("rlref/DictObsToy-v0", entry_point=DictObsToy, max_episode_steps=10)
