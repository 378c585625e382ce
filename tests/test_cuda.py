"""The `--cuda` path of every script that has one: it trains on the GPU, learns, its saved model
evaluates on the CPU, and its checkpoint resumes on the CPU with `--no-cuda`. Skipped where
torch sees no CUDA device (CI has none); run on a GPU machine with
`python -m pytest tests/test_cuda.py`."""

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
    """Catches a checkpoint that a CPU machine cannot load with the script (CUDA tensors read
    without map_location) and an evaluation that differs from the run's own."""
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
    checkpoint = torch.load(result["model_path"], weights_only=True, map_location="cpu")
    assert all(t.device.type == "cpu" for t in checkpoint["model"].values())
    again = script.evaluate(result["model_path"], eval_episodes=2, seed=1)
    assert again["eval_mean_return"] == pytest.approx(result["eval_mean_return"])


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
    checkpoint = torch.load(result["model_path"], weights_only=True, map_location="cpu")
    assert all(t.device.type == "cpu" for t in checkpoint["model"].values())
    again = dqn.evaluate(result["model_path"], 2, seed=1)
    assert again["eval_mean_return"] == result["eval_mean_return"]


@pytest.mark.parametrize(
    "script", [ppo, reinforce, actor_critic, dqn], ids=["ppo", "reinforce", "actor_critic", "dqn"]
)
def test_a_cuda_run_resumes_on_the_cpu_with_no_cuda(script, tmp_path, monkeypatch):
    """Catches a --cuda checkpoint that --resume cannot continue on the CPU: its CUDA optimizer
    state, its saved `cuda=True` kept against `--no-cuda`."""
    monkeypatch.chdir(tmp_path)
    args = dict(seed=1, cuda=True, total_timesteps=4096, save_every=2048)
    if script is dqn:
        args.update(learning_starts=1000)
    result = script.main(script.Args(**args, save_model=True, eval_episodes=1))
    path = result["model_path"]
    resumed = script.main(
        script.parse_args(["--resume", path, "--no-cuda", "--total-timesteps", "8192"])
    )
    assert resumed["global_step"] >= 8192
    saved = torch.load(path, weights_only=True)  # no map_location: a CPU run saved it
    assert all(t.device.type == "cpu" for t in saved["model"].values())
