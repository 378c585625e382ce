"""Tests of ppo.py: the math against brute force, gymnasium 1.x episode boundaries, that it
learns, reproducibility, save/evaluate, wandb offline, and the clear errors for bad input."""

import glob
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

import ppo
from conftest import ROOT


# --- GAE against explicit sums ---
def brute_force_gae(rewards, values, next_values, dones, gamma, lam):
    """A_t = sum_{l>=0} (gamma*lam)^l delta_{t+l}, the sum stopping at the step where the episode ends."""
    T, N = rewards.shape
    adv = np.zeros((T, N))
    for n in range(N):
        for t in range(T):
            total, discount = 0.0, 1.0
            for k in range(t, T):
                delta = rewards[k, n] + gamma * next_values[k, n] - values[k, n]
                total += discount * delta
                discount *= gamma * lam
                if dones[k, n]:
                    break
            adv[t, n] = total
    return adv


def test_gae_matches_explicit_sums_with_episode_ends():
    rng = np.random.default_rng(0)
    T, N = 12, 3
    rewards, values = rng.normal(size=(T, N)), rng.normal(size=(T, N))
    next_values = rng.normal(size=(T, N))
    dones = (rng.random((T, N)) < 0.25).astype(np.float64)
    terminated = dones * (rng.random((T, N)) < 0.5)  # some ends are terminations, the others truncations
    next_values = next_values * (1 - terminated)
    got = ppo.gae(rewards, values, next_values, dones, 0.97, 0.9)
    np.testing.assert_allclose(got, brute_force_gae(rewards, values, next_values, dones, 0.97, 0.9), rtol=1e-10)


def test_gae_lambda_one_is_monte_carlo_return_minus_value():
    # One episode of 4 steps that terminates: A_t = sum_k gamma^(k-t) r_k - V(s_t).
    gamma = 0.9
    rewards = np.array([[1.0], [2.0], [3.0], [4.0]])
    values = np.array([[0.5], [0.1], [-0.3], [2.0]])
    next_values = np.concatenate([values[1:], np.zeros((1, 1))])  # 0 after termination
    dones = np.array([[0.0], [0.0], [0.0], [1.0]])
    adv = ppo.gae(rewards, values, next_values, dones, gamma, 1.0)
    mc = [sum(gamma ** (k - t) * rewards[k, 0] for k in range(t, 4)) for t in range(4)]
    np.testing.assert_allclose(adv[:, 0], np.array(mc) - values[:, 0], rtol=1e-12)


def test_gae_lambda_zero_is_the_td_error():
    rng = np.random.default_rng(2)
    rewards, values, next_values = rng.normal(size=(6, 2)), rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    dones = np.zeros((6, 2))
    adv = ppo.gae(rewards, values, next_values, dones, 0.99, 0.0)
    np.testing.assert_allclose(adv, rewards + 0.99 * next_values - values, rtol=1e-12)


def test_gae_truncation_bootstraps_and_termination_does_not():
    # The last step of an episode: truncated -> target r + gamma*V(final obs); terminated -> target r.
    gamma, v_final = 0.99, 7.0
    rewards = np.array([[1.0, 1.0]])
    values = np.array([[3.0, 3.0]])
    dones = np.array([[1.0, 1.0]])
    next_values = np.array([[v_final, 0.0]])  # env 0 truncated (V(final obs)), env 1 terminated (0)
    returns = ppo.gae(rewards, values, next_values, dones, gamma, 0.95) + values
    assert returns[0, 0] == pytest.approx(1.0 + gamma * v_final)
    assert returns[0, 1] == pytest.approx(1.0)


def test_gae_does_not_leak_across_an_autoreset():
    # Env ends at t=1; the huge deltas of the next episode (t=2,3) must not reach t<=1.
    rewards = np.array([[1.0], [1.0], [100.0], [100.0]])
    values, next_values = np.zeros((4, 1)), np.zeros((4, 1))
    dones = np.array([[0.0], [1.0], [0.0], [0.0]])
    adv = ppo.gae(rewards, values, next_values, dones, 1.0, 1.0)
    assert adv[:2, 0].tolist() == [2.0, 1.0]
    assert adv[2:, 0].tolist() == [200.0, 100.0]


def test_true_next_obs_is_the_final_obs_at_an_autoreset():
    # A 5-step time limit: the 5th step truncates; SAME_STEP returns the next episode's first
    # obs, and the transition's s_{t+1} must be the obs a plain env reaches after 5 steps.
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.make("CartPole-v1", max_episode_steps=5)] * 2, autoreset_mode=AutoresetMode.SAME_STEP
    )
    single = gym.make("CartPole-v1", max_episode_steps=5)
    envs.reset(seed=3)
    single_obs, _ = single.reset(seed=3)
    for step in range(5):
        obs, _, terminated, truncated, info = envs.step(np.array([step % 2, step % 2]))
        single_obs, *_ = single.step(step % 2)
    done = terminated | truncated
    assert truncated.all() and not terminated.any()
    next_obs = ppo.true_next_obs(obs, done, info)
    np.testing.assert_allclose(next_obs[0], single_obs)
    assert not np.allclose(next_obs[0], obs[0])  # obs[0] is already the reset observation
    not_done = np.zeros(2, bool)
    assert ppo.true_next_obs(obs, not_done, {}) is obs


# --- policy and value objectives, by hand ---
def test_clip_policy_loss_by_hand():
    ratio = torch.tensor([0.5, 1.0, 1.5, 0.5])
    adv = torch.tensor([1.0, -1.0, 2.0, -1.0])
    # min(0.5*1, 0.8*1)=0.5; min(-1,-1)=-1; min(3.0, 1.2*2)=2.4; min(-0.5, 0.8*-1)=-0.8
    expected = -(0.5 - 1.0 + 2.4 - 0.8) / 4
    assert ppo.clip_policy_loss(ratio, adv, 0.2).item() == pytest.approx(expected)


def test_clip_policy_loss_gradient_is_zero_outside_the_clip_range():
    ratio = torch.tensor([1.5, 0.5], requires_grad=True)
    ppo.clip_policy_loss(ratio, torch.tensor([1.0, -1.0]), 0.2).backward()
    assert ratio.grad.tolist() == [0.0, 0.0]


def test_kl_penalty_policy_loss_by_hand():
    ratio = torch.tensor([1.2, 0.9])
    adv = torch.tensor([2.0, -1.0])
    kl = torch.tensor([0.05, 0.01])
    expected = -((1.2 * 2.0 - 0.5 * 0.05) + (0.9 * -1.0 - 0.5 * 0.01)) / 2
    assert ppo.kl_penalty_policy_loss(ratio, adv, kl, 0.5).item() == pytest.approx(expected)


def test_adaptive_beta_rule():
    target = 0.01
    assert ppo.adapt_kl_beta(1.0, 0.0151, target) == 2.0  # KL > 1.5*target: double
    assert ppo.adapt_kl_beta(1.0, 0.0066, target) == 0.5  # KL < target/1.5: halve
    assert ppo.adapt_kl_beta(1.0, 0.01, target) == 1.0  # in between: keep
    assert ppo.adapt_kl_beta(1.0, 0.0149, target) == 1.0


def test_value_loss_by_hand():
    new, old, ret = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0]), torch.tensor([2.0, 1.0])
    # unclipped: (1-2)^2=1, (0-1)^2=1; clipped V: 0+clip(1,-.2,.2)=0.2 -> (0.2-2)^2=3.24; 0 -> 1
    assert ppo.value_loss(new, old, ret, 0.2, clip_vloss=False).item() == pytest.approx(0.5 * (1 + 1) / 2)
    assert ppo.value_loss(new, old, ret, 0.2, clip_vloss=True).item() == pytest.approx(0.5 * (3.24 + 1) / 2)


def test_exact_kl_of_the_gaussian_policy_matches_closed_form():
    agent = ppo.Agent(3, gym.spaces.Box(-1, 1, (2,)))
    mean_a, mean_b = torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.0]])
    logstd_a, logstd_b = torch.tensor([[0.0, 0.3]]), torch.tensor([[-0.2, 0.1]])
    kl = torch.distributions.kl_divergence(
        agent.dist(torch.cat([mean_a, logstd_a], -1)), agent.dist(torch.cat([mean_b, logstd_b], -1))
    )
    sa, sb = logstd_a.exp(), logstd_b.exp()
    closed = (logstd_b - logstd_a + (sa**2 + (mean_a - mean_b) ** 2) / (2 * sb**2) - 0.5).sum(-1)
    assert kl.item() == pytest.approx(closed.item(), rel=1e-6)


def test_gumbel_max_sampling_follows_the_softmax():
    torch.manual_seed(0)
    agent = ppo.Agent(2, gym.spaces.Discrete(3))
    obs = torch.zeros(20000, 2)
    with torch.no_grad():
        probs = agent.actor(obs[:1]).softmax(-1)[0]
        freq = torch.bincount(agent.sample(obs), minlength=3).float() / 20000
    np.testing.assert_allclose(freq.numpy(), probs.numpy(), atol=0.015)


def test_running_mean_std_matches_numpy():
    rng = np.random.default_rng(1)
    data = rng.normal(3.0, 2.0, size=(300, 4))
    rms = ppo.RunningMeanStd(4)
    for chunk in np.split(data, 6):
        rms.update(chunk)
    np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-4)
    np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-3)


# --- it learns, reproducibly, and round-trips through save/evaluate ---
def test_cartpole_learns_and_the_saved_policy_reproduces_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = ppo.main(ppo.Args(seed=1, save_model=True))
    assert result["mean_return_last10"] >= 475
    assert result["eval_mean_return"] >= 475
    returns_a = ppo.evaluate(result["model_path"], eval_episodes=3, seed=5)
    returns_b = ppo.evaluate(result["model_path"], eval_episodes=3, seed=5)
    assert returns_a == returns_b


def test_pendulum_improves_and_saves_its_normalization(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ppo.Args(env_id="Pendulum-v1", seed=1, total_timesteps=40_960, num_envs=4, num_steps=512, gamma=0.9,
                    learning_rate=1e-3, update_epochs=10, num_minibatches=8, anneal_lr=False, save_model=True,
                    eval_episodes=2)
    result = ppo.main(args)
    assert result["mean_return_last10"] > -600  # a random policy averages about -1200
    checkpoint = torch.load(result["model_path"], weights_only=False)
    assert checkpoint["obs_rms"] is not None and checkpoint["obs_rms"]["count"] > 40_000
    assert np.isfinite(result["eval_mean_return"])


def test_same_seed_gives_identical_episodes(capsys):
    def episode_lines(seed):
        ppo.main(ppo.Args(seed=seed, total_timesteps=8192))
        return [l for l in capsys.readouterr().out.splitlines() if "episodic_return=" in l]

    first, second, other = episode_lines(3), episode_lines(3), episode_lines(4)
    assert len(first) > 20 and first == second
    assert first != other


def test_kl_penalty_variant_learns_cartpole():
    result = ppo.main(ppo.Args(seed=1, loss="kl", total_timesteps=40_960))
    assert result["mean_return_last10"] >= 200  # random play: about 20


def test_track_writes_an_offline_wandb_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    ppo.main(ppo.Args(track=True, total_timesteps=2048))
    runs = glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "*.wandb"))
    assert len(runs) == 1
    data = open(runs[0], "rb").read()
    for key in [b"charts/episodic_return", b"losses/approx_kl", b"losses/clipfrac", b"charts/SPS"]:
        assert key in data


# --- bad input: one clear error before any training ---
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
        raise gym.error.DependencyNotInstalled('FakeSim is not installed, run `pip install fakesim`')


gym.register("rlref/MultiDiscreteToy-v0", entry_point=MultiDiscreteToy)
gym.register("rlref/NeedsMissingPackageToy-v0", entry_point=NeedsMissingPackageToy)
gym.register("rlref/DictObsToy-v0", entry_point=DictObsToy)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(env_id="NoSuchEnv-v0"), "unknown env id 'NoSuchEnv-v0'"),
        (dict(env_id="rlref/MultiDiscreteToy-v0"), "handles Discrete and 1-D Box action spaces"),
        (dict(env_id="rlref/DictObsToy-v0"), "needs a flat Box observation space"),
        (dict(env_id="rlref/NeedsMissingPackageToy-v0"), "needs a package that is not installed: .*pip install fakesim"),
        (dict(num_envs=3, num_steps=5, num_minibatches=4), "must divide into --num-minibatches"),
        (dict(num_envs=0), "--num-envs must be a positive integer"),
        (dict(num_steps=-1), "--num-steps must be a positive integer"),
        (dict(update_epochs=0), "--update-epochs must be a positive integer"),
        (dict(total_timesteps=100), "smaller than one rollout"),
        (dict(eval_checkpoint="no/such/ppo.pt"), "no such file"),
    ],
)
def test_bad_input_gets_a_clear_error(kwargs, message, capsys):
    with pytest.raises(ppo.UsageError, match=message):
        ppo.main(ppo.Args(**kwargs))
    assert "episodic_return" not in capsys.readouterr().out  # nothing was trained


def test_capture_video_without_moviepy_is_refused(monkeypatch):
    real_find_spec = ppo.importlib.util.find_spec
    monkeypatch.setattr(ppo.importlib.util, "find_spec", lambda name: None if name == "moviepy" else real_find_spec(name))
    with pytest.raises(ppo.UsageError, match="pip install moviepy"):
        ppo.main(ppo.Args(capture_video=True))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(ppo.UsageError, match="no CUDA device"):
        ppo.main(ppo.Args(cuda=True))


def test_cli_prints_one_line_error_and_help_lists_the_flags():
    bad = subprocess.run([sys.executable, "ppo.py", "--env-id", "Nope-v9"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stderr.strip() == "ppo.py: error: unknown env id 'Nope-v9'; registered ids look like CartPole-v1, Acrobot-v1, Pendulum-v1"
    help_text = subprocess.run([sys.executable, "ppo.py", "--help"], cwd=ROOT, capture_output=True, text=True).stdout
    for field in ppo.Args.__dataclass_fields__:
        assert "--" + field.replace("_", "-") in help_text, field
    assert "the ratio clipping epsilon of PPO-Clip" in help_text
