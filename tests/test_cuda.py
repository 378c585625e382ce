"""The `--cuda` path of every script that has one: it trains on the GPU, learns, and its saved
model evaluates on the CPU. Skipped where torch sees no CUDA device (CI has none); run on a
GPU machine with `python -m pytest tests/test_cuda.py`."""

import re

import numpy as np
import pytest
import torch

import actor_critic
import dqn
import ppo
import reinforce

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def best_mean10(out: str) -> float:
    """The best mean of 10 consecutive training episodes printed on stdout."""
    returns = [
        float(r) for r in re.findall(r"^global_step=\d+, episodic_return=([-0-9.]+)$", out, re.M)
    ]
    return max(np.mean(returns[i - 10 : i]) for i in range(10, len(returns) + 1))


# On the CPU, seed 1 with these budgets reaches a best mean10 of 239-490 (random play: about 20).
# The GPU's float rounding takes another trajectory, so the bar is lower: it learns, on CUDA.
@pytest.mark.parametrize(
    "script, total_timesteps",
    [(ppo, 40_960), (dqn, 30_000), (reinforce, 30_000), (actor_critic, 30_000)],
    ids=["ppo", "dqn", "reinforce", "actor_critic"],
)
def test_cartpole_learns_on_cuda(script, total_timesteps, capsys):
    """Catches a --cuda run whose networks or batches stay on the CPU, or that stops learning."""
    torch.cuda.reset_peak_memory_stats()
    script.main(script.Args(seed=1, cuda=True, total_timesteps=total_timesteps))
    assert torch.cuda.max_memory_allocated() > 0  # the networks and batches were on the GPU
    assert best_mean10(capsys.readouterr().out) >= 100


@pytest.mark.parametrize(
    "script", [ppo, reinforce, actor_critic], ids=["ppo", "reinforce", "actor_critic"]
)
def test_continuous_run_on_cuda_saves_a_model_that_evaluates_on_the_cpu(
    script, tmp_path, monkeypatch
):
    """Catches a checkpoint saved with CUDA tensors (unloadable on a CPU machine) and an evaluation
    that differs from the run's own."""
    monkeypatch.chdir(tmp_path)
    args = script.Args(
        seed=1,
        cuda=True,
        env_id="Pendulum-v1",
        total_timesteps=8192,
        save_model=True,
        eval_episodes=2,
    )
    result = script.main(args)
    checkpoint = torch.load(result["model_path"], weights_only=True)
    assert all(t.device.type == "cpu" for t in checkpoint["model"].values())
    again = script.evaluate(result["model_path"], eval_episodes=2, seed=1)
    assert np.mean(again) == pytest.approx(result["eval_mean_return"])


def test_dqn_saves_a_model_that_evaluates_on_the_cpu(tmp_path, monkeypatch):
    """Catches dqn.py's checkpoint saved with CUDA tensors, unloadable on a CPU machine."""
    monkeypatch.chdir(tmp_path)
    result = dqn.main(
        dqn.Args(
            seed=1,
            cuda=True,
            total_timesteps=5000,
            learning_starts=1000,
            save_model=True,
            eval_episodes=2,
        )
    )
    checkpoint = torch.load(result["model_path"], weights_only=True)
    assert all(t.device.type == "cpu" for t in checkpoint["model"].values())
    assert np.mean(dqn.evaluate(result["model_path"], 2, seed=1)) == result["eval_mean_return"]
