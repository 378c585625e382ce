"""Tests of ppo.py: the PPO objectives by hand, that it learns, reproducibility, save/evaluate,
wandb offline, and the errors for bad sizes. GAE, episode boundaries and the shared errors
are checked for every script in test_shared.py."""

import re

import numpy as np
import pytest
import torch

import ppo


# --- policy and value objectives, by hand ---
def test_clip_policy_loss_by_hand():
    """Catches PPO-Clip's min and clip in the wrong places (or the wrong sign)."""
    ratio = torch.tensor([0.5, 1.0, 1.5, 0.5])
    adv = torch.tensor([1.0, -1.0, 2.0, -1.0])
    # min(0.5*1, 0.8*1)=0.5; min(-1,-1)=-1; min(3.0, 1.2*2)=2.4; min(-0.5, 0.8*-1)=-0.8
    expected = -(0.5 - 1.0 + 2.4 - 0.8) / 4
    assert ppo.clip_policy_loss(ratio, adv, 0.2).item() == pytest.approx(expected)


def test_clip_policy_loss_gradient_is_zero_outside_the_clip_range():
    """Catches a clipped objective that still pushes the ratio past 1 +- eps."""
    ratio = torch.tensor([1.5, 0.5], requires_grad=True)
    ppo.clip_policy_loss(ratio, torch.tensor([1.0, -1.0]), 0.2).backward()
    assert ratio.grad.tolist() == [0.0, 0.0]


def test_kl_penalty_policy_loss_by_hand():
    """Catches PPO-KL's penalty added with the wrong sign or without beta."""
    ratio = torch.tensor([1.2, 0.9])
    adv = torch.tensor([2.0, -1.0])
    kl = torch.tensor([0.05, 0.01])
    expected = -((1.2 * 2.0 - 0.5 * 0.05) + (0.9 * -1.0 - 0.5 * 0.01)) / 2
    assert ppo.kl_penalty_policy_loss(ratio, adv, kl, 0.5).item() == pytest.approx(expected)


def test_adaptive_beta_rule():
    """Catches the PPO paper's beta rule with its thresholds or factors changed."""
    target = 0.01
    assert ppo.adapt_kl_beta(1.0, 0.0151, target) == 2.0  # KL > 1.5*target: double
    assert ppo.adapt_kl_beta(1.0, 0.0066, target) == 0.5  # KL < target/1.5: halve
    assert ppo.adapt_kl_beta(1.0, 0.01, target) == 1.0  # in between: keep
    assert ppo.adapt_kl_beta(1.0, 0.0149, target) == 1.0


def test_value_loss_by_hand():
    """Catches the clipped value loss taking the min, or clipping V rather than V - V_old."""
    new, old, ret = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0]), torch.tensor([2.0, 1.0])
    # unclipped: (1-2)^2=1, (0-1)^2=1; clipped V: 0+clip(1,-.2,.2)=0.2 -> (0.2-2)^2=3.24; 0 -> 1
    assert ppo.value_loss(new, ret).item() == pytest.approx(0.5 * (1 + 1) / 2)
    assert ppo.clipped_value_loss(new, old, ret, 0.2).item() == pytest.approx(0.5 * (3.24 + 1) / 2)


def test_ppo_kl_penalizes_the_kl_to_the_policy_before_the_update(monkeypatch):
    """Catches PPO-KL's KL taken against the wrong reference (pi itself, or pi_old copied after the
    update) and a beta that does not adapt: at the first minibatch of each update pi is pi_old, so
    the KL is exactly 0, after three steps it is positive, and with a tiny target beta doubles."""
    seen = []
    real = ppo.kl_penalty_policy_loss

    def spy(ratio, advantages, kl, beta):
        seen.append((kl.detach().clone(), beta))
        return real(ratio, advantages, kl, beta)

    monkeypatch.setattr(ppo, "kl_penalty_policy_loss", spy)
    args = ppo.Args(loss="kl", kl_target=1e-9, total_timesteps=1024, num_envs=4, num_steps=64)
    ppo.main(ppo.Args(**{**vars(args), "update_epochs": 2, "num_minibatches": 2}))
    assert len(seen) == 4 * 4  # 4 updates of 2 epochs of 2 minibatches
    for k in range(0, len(seen), 4):
        assert seen[k][0].abs().max() == 0.0
        assert seen[k + 3][0].mean() > 0.0
    assert [beta for _, beta in seen[::4]] == [1.0, 2.0, 4.0, 8.0]


# --- it learns, reproducibly, and round-trips through save/evaluate ---
def best_mean10(stdout: str) -> float:
    """The best mean of 10 consecutive training episodes in a run's printed output."""
    returns = [
        float(r) for r in re.findall(r"^global_step=\d+, episodic_return=([-0-9.]+)$", stdout, re.M)
    ]
    return max(np.mean(returns[i - 10 : i]) for i in range(10, len(returns) + 1))


@pytest.mark.slow  # a learning threshold
def test_cartpole_solves_and_the_saved_greedy_policy_holds(tmp_path, monkeypatch, capsys):
    """Catches a PPO that no longer solves CartPole with its defaults, or a saved policy that does
    not play as trained."""
    monkeypatch.chdir(tmp_path)
    # default args (seeds 1-10 all end at 500)
    result = ppo.main(ppo.Args(seed=1, save_model=True, eval_episodes=3))
    assert best_mean10(capsys.readouterr().out) >= 475
    assert result["mean_return_last10"] >= 475
    assert result["eval_mean_return"] >= 475
    returns_a = ppo.evaluate(result["model_path"], eval_episodes=3, seed=5)
    returns_b = ppo.evaluate(result["model_path"], eval_episodes=3, seed=5)
    assert returns_a == returns_b


@pytest.mark.slow  # a learning threshold
def test_pendulum_improves_and_saves_its_normalization(tmp_path, monkeypatch):
    """Catches Box-action PPO that does not learn Pendulum (the Gaussian, the normalization, the
    clipping)."""
    monkeypatch.chdir(tmp_path)
    args = ppo.Args(
        env_id="Pendulum-v1",
        seed=2,
        total_timesteps=40_960,
        num_envs=4,
        num_steps=512,
        gamma=0.9,
        learning_rate=1e-3,
        update_epochs=10,
        num_minibatches=8,
        ent_coef=0.0,
        anneal_lr=False,
        save_model=True,
        eval_episodes=2,
    )
    result = ppo.main(args)
    assert result["mean_return_last10"] > -600  # a random policy averages about -1200
    checkpoint = torch.load(result["model_path"], weights_only=True)
    obs_var = checkpoint["normalizer"]["obs_rms"]["var"]
    assert obs_var.shape == (3,) and not torch.equal(obs_var, torch.ones(3))
    assert np.isfinite(result["eval_mean_return"])


def test_same_seed_gives_identical_episodes(capsys):
    """Catches a source of randomness that --seed does not set (or a seed that is ignored)."""

    def episode_lines(seed):
        ppo.main(ppo.Args(seed=seed, total_timesteps=8192))
        lines = capsys.readouterr().out.splitlines()
        return [line for line in lines if "episodic_return=" in line]

    first, second, other = episode_lines(3), episode_lines(3), episode_lines(4)
    assert len(first) > 20 and first == second
    assert first != other


@pytest.mark.slow  # a learning threshold
def test_kl_penalty_variant_learns_cartpole(capsys):
    """Catches a PPO-KL (--loss kl) that does not learn CartPole."""
    ppo.main(ppo.Args(seed=1, loss="kl", total_timesteps=40_960))
    # random play: about 20. (Seeds 1-8 reach 224-500; the last 10 episodes are a noisier figure:
    # 103-500.)
    assert best_mean10(capsys.readouterr().out) >= 200


def test_track_writes_an_offline_wandb_run(offline_wandb):
    """Catches a metric missing from wandb, and PPO-KL's beta logged under PPO-Clip."""
    ppo.main(ppo.Args(track=True, total_timesteps=2048))
    data = offline_wandb()
    assert b"losses/kl_beta" not in data
    for key in [b"charts/episodic_return", b"losses/approx_kl", b"losses/clipfrac", b"charts/SPS"]:
        assert key in data


# --- bad input specific to ppo.py (the shared ones are in test_shared.py) ---
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_envs=3, num_steps=5, num_minibatches=4), "must divide the batch"),
        (dict(num_envs=0), "--num-envs must be positive"),
        (dict(num_steps=-1), "--num-steps must be positive"),
        (dict(update_epochs=0), "--update-epochs must be positive"),
        (dict(num_minibatches=0), "--num-minibatches must be positive"),
        (
            dict(env_id="rlref/MultiDiscreteToy-v0"),
            "actions must be Discrete or 1-D Box; rlref/MultiDiscreteToy-v0 has MultiDiscrete",
        ),
    ],
)
def test_bad_sizes_get_a_clear_error(kwargs, message, capsys):
    """Catches sizes that crash deep in the loop instead of a one-line error."""
    with pytest.raises(ppo.UsageError, match=message):
        ppo.main(ppo.Args(**kwargs))
    assert "episodic_return" not in capsys.readouterr().out  # nothing was trained


def test_clipfrac_is_the_mean_over_the_updates_minibatches(monkeypatch, fake_wandb):
    """Catches losses/clipfrac taken from the update's last minibatch alone: CleanRL logs the mean
    over all its minibatches under that name. Each update's 16 minibatches clip unequal shares."""
    fractions = []
    real = ppo.clip_policy_loss

    def watched(ratio, advantages, clip_coef):
        fractions.append(((ratio - 1).abs() > clip_coef).float().mean().item())
        return real(ratio, advantages, clip_coef)

    monkeypatch.setattr(ppo, "clip_policy_loss", watched)
    args = dict(num_envs=4, num_steps=64, num_minibatches=4, learning_rate=0.05)
    ppo.main(ppo.Args(track=True, total_timesteps=768, **args))
    logged = [m["losses/clipfrac"] for m in fake_wandb.logged if "losses/clipfrac" in m]
    per_update = [fractions[i : i + 16] for i in range(0, len(fractions), 16)]
    assert len(logged) == len(per_update) == 3
    assert logged == pytest.approx([np.mean(f) for f in per_update])
    assert any(f[-1] != pytest.approx(np.mean(f)) for f in per_update)  # the test can fail


def test_track_logs_kl_beta_under_loss_kl(offline_wandb):
    """Catches PPO-KL's adaptive beta missing from wandb."""
    ppo.main(ppo.Args(track=True, loss="kl", total_timesteps=2048))
    assert b"losses/kl_beta" in offline_wandb()
