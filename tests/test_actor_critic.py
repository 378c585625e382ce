"""Tests of actor_critic.py: the losses by hand, that it learns (also with a shared trunk),
reproducibility, save/evaluate, wandb offline, and the errors for bad sizes. GAE, episode boundaries
and the shared errors are checked for every script in test_shared.py."""

import re

import numpy as np
import pytest
import torch

import actor_critic


def best_mean10(out: str) -> float:
    """The highest mean of 10 consecutive episodic returns printed in a run (the benchmark's
    criterion)."""
    returns = [
        float(r) for r in re.findall(r"^global_step=\d+, episodic_return=([-0-9.]+)$", out, re.M)
    ]
    return max(np.mean(returns[i - 10 : i]) for i in range(10, len(returns) + 1))


# --- the losses, by hand ---
def test_policy_gradient_loss_by_hand():
    """Catches a wrong sign or a sum for the mean in the actor's loss -E[A log pi]."""
    logprobs = torch.log(torch.tensor([0.5, 0.25]))
    advantages = torch.tensor([1.0, -2.0])
    # L = -(1*ln 0.5 + (-2)*ln 0.25) / 2 = -(-0.693147 + 2.772589) / 2 = -1.039721
    assert actor_critic.policy_gradient_loss(logprobs, advantages).item() == pytest.approx(
        -1.039721, abs=1e-6
    )


def test_value_loss_by_hand():
    """Catches a value loss without its 0.5 or with another target than R_t."""
    values, returns = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([3.0, -1.0, 2.0])
    assert actor_critic.value_loss(values, returns).item() == pytest.approx(0.5 * (4 + 1 + 0) / 3)


# --- it learns, reproducibly, and round-trips through save/evaluate ---
@pytest.mark.slow  # a learning threshold
def test_cartpole_solves_and_the_saved_greedy_policy_holds(tmp_path, monkeypatch, capsys):
    """Catches an A2C that no longer learns CartPole with its defaults, or a saved policy that does
    not play as trained."""
    monkeypatch.chdir(tmp_path)
    # Default args but a shorter budget: the learning rate is constant by default, so the first
    # 40k steps are those of the full run (seed 6 reaches 475 and evaluates at 500 within them).
    result = actor_critic.main(
        actor_critic.Args(seed=6, total_timesteps=40_000, save_model=True, eval_episodes=3)
    )
    assert best_mean10(capsys.readouterr().out) >= 475  # random play: about 20
    assert result["eval_mean_return"] >= 475
    returns = actor_critic.evaluate(result["model_path"], eval_episodes=2, seed=5)
    assert returns == actor_critic.evaluate(result["model_path"], eval_episodes=2, seed=5)


@pytest.mark.slow  # a learning threshold
def test_shared_trunk_learns_cartpole(capsys):
    """Catches --shared-trunk breaking learning (the value loss swamping the shared layers)."""
    actor_critic.main(actor_critic.Args(seed=1, shared_trunk=True, total_timesteps=40_000))
    # random play: about 20; seed 1 reaches 84 here
    assert best_mean10(capsys.readouterr().out) >= 60


def test_same_seed_gives_identical_episodes(capsys):
    """Catches a source of randomness that --seed does not set (or a seed that is ignored)."""

    def episode_lines(seed):
        actor_critic.main(actor_critic.Args(seed=seed, total_timesteps=4096))
        lines = capsys.readouterr().out.splitlines()
        return [line for line in lines if "episodic_return=" in line]

    first, second, other = episode_lines(3), episode_lines(3), episode_lines(4)
    assert len(first) > 20 and first == second
    assert first != other


def test_track_writes_an_offline_wandb_run(offline_wandb):
    """Catches a metric missing from wandb under --track."""
    actor_critic.main(actor_critic.Args(track=True, total_timesteps=2048))
    data = offline_wandb()
    for key in [
        b"charts/episodic_return",
        b"losses/policy_loss",
        b"losses/value_loss",
        b"losses/explained_variance",
    ]:
        assert key in data


# --- bad input specific to actor_critic.py (the shared ones are in test_shared.py) ---
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_envs=0), "--num-envs must be positive, got 0"),
        (dict(num_steps=-1), "--num-steps must be positive, got -1"),
    ],
)
def test_bad_sizes_get_a_clear_error(kwargs, message, capsys):
    """Catches sizes that crash deep in the loop instead of a one-line error."""
    with pytest.raises(actor_critic.UsageError, match=message):
        actor_critic.main(actor_critic.Args(**kwargs))
    assert "episodic_return" not in capsys.readouterr().out  # nothing was trained
