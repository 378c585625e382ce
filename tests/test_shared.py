"""Behaviour the vector-env scripts share, checked on each of them: GAE against explicit sums,
gymnasium 1.x episode boundaries, the hand-written log-densities against torch.distributions,
the numpy rollout sampler against the torch actor, and the clear errors for bad input."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

import actor_critic
import dqn
import ppo
import reinforce
from conftest import ROOT

ALL_SCRIPTS = [reinforce, actor_critic, dqn, ppo]
POLICY_SCRIPTS = [reinforce, actor_critic, ppo]  # the ones that act by sampling a ~ pi(.|s)
GAE_SCRIPTS = [actor_critic, ppo]  # the ones that learn from n-step rollouts with GAE(lambda)
NEXT_OBS_SCRIPTS = [actor_critic, dqn, ppo]  # the ones that learn from transitions that end at an autoreset


def last_actor_layer(agent):
    return agent.actor_head if hasattr(agent, "actor_head") else agent.actor[-1]


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


@pytest.mark.parametrize("script", GAE_SCRIPTS, ids=lambda m: m.__name__)
def test_gae_matches_explicit_sums_with_episode_ends(script):
    rng = np.random.default_rng(0)
    T, N = 12, 3
    rewards, values = rng.normal(size=(T, N)), rng.normal(size=(T, N))
    next_values = rng.normal(size=(T, N))
    dones = (rng.random((T, N)) < 0.25).astype(np.float64)
    terminated = dones * (rng.random((T, N)) < 0.5)  # some ends are terminations, the others truncations
    next_values = next_values * (1 - terminated)
    got = script.gae(rewards, values, next_values, dones, 0.97, 0.9)
    np.testing.assert_allclose(got, brute_force_gae(rewards, values, next_values, dones, 0.97, 0.9), rtol=1e-10)


@pytest.mark.parametrize("script", GAE_SCRIPTS, ids=lambda m: m.__name__)
def test_gae_lambda_one_is_monte_carlo_return_minus_value(script):
    # One episode of 4 steps that terminates: A_t = sum_k gamma^(k-t) r_k - V(s_t).
    gamma = 0.9
    rewards = np.array([[1.0], [2.0], [3.0], [4.0]])
    values = np.array([[0.5], [0.1], [-0.3], [2.0]])
    next_values = np.concatenate([values[1:], np.zeros((1, 1))])  # 0 after termination
    dones = np.array([[0.0], [0.0], [0.0], [1.0]])
    adv = script.gae(rewards, values, next_values, dones, gamma, 1.0)
    mc = [sum(gamma ** (k - t) * rewards[k, 0] for k in range(t, 4)) for t in range(4)]
    np.testing.assert_allclose(adv[:, 0], np.array(mc) - values[:, 0], rtol=1e-12)


@pytest.mark.parametrize("script", GAE_SCRIPTS, ids=lambda m: m.__name__)
def test_gae_lambda_zero_is_the_td_error(script):
    rng = np.random.default_rng(2)
    rewards, values, next_values = rng.normal(size=(6, 2)), rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    dones = np.zeros((6, 2))
    adv = script.gae(rewards, values, next_values, dones, 0.99, 0.0)
    np.testing.assert_allclose(adv, rewards + 0.99 * next_values - values, rtol=1e-12)


@pytest.mark.parametrize("script", GAE_SCRIPTS, ids=lambda m: m.__name__)
def test_gae_truncation_bootstraps_and_termination_does_not(script):
    # The last step of an episode: truncated -> target r + gamma*V(final obs); terminated -> target r.
    gamma, v_final = 0.99, 7.0
    rewards = np.array([[1.0, 1.0]])
    values = np.array([[3.0, 3.0]])
    dones = np.array([[1.0, 1.0]])
    next_values = np.array([[v_final, 0.0]])  # env 0 truncated (V(final obs)), env 1 terminated (0)
    returns = script.gae(rewards, values, next_values, dones, gamma, 0.95) + values
    assert returns[0, 0] == pytest.approx(1.0 + gamma * v_final)
    assert returns[0, 1] == pytest.approx(1.0)


@pytest.mark.parametrize("script", GAE_SCRIPTS, ids=lambda m: m.__name__)
def test_gae_does_not_leak_across_an_autoreset(script):
    # Env ends at t=1; the huge deltas of the next episode (t=2,3) must not reach t<=1.
    rewards = np.array([[1.0], [1.0], [100.0], [100.0]])
    values, next_values = np.zeros((4, 1)), np.zeros((4, 1))
    dones = np.array([[0.0], [1.0], [0.0], [0.0]])
    adv = script.gae(rewards, values, next_values, dones, 1.0, 1.0)
    assert adv[:2, 0].tolist() == [2.0, 1.0]
    assert adv[2:, 0].tolist() == [200.0, 100.0]


@pytest.mark.parametrize("script", NEXT_OBS_SCRIPTS, ids=lambda m: m.__name__)
def test_true_next_obs_is_the_final_obs_at_an_autoreset(script):
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
    next_obs = script.true_next_obs(obs, done, info)
    np.testing.assert_allclose(next_obs[0], single_obs)
    assert not np.allclose(next_obs[0], obs[0])  # obs[0] is already the reset observation
    not_done = np.zeros(2, bool)
    assert script.true_next_obs(obs, not_done, {}) is obs



@pytest.mark.parametrize("script", POLICY_SCRIPTS, ids=lambda m: m.__name__)
def test_numpy_policy_samples_what_the_torch_actor_defines(script):
    torch.manual_seed(0)
    obs = np.random.default_rng(0).normal(size=(20000, 2)).astype(np.float32)
    obs[:] = obs[0]  # one state, many draws
    # discrete: Gumbel-max frequencies follow softmax(logits) of the torch actor
    agent = script.Agent(2, gym.spaces.Discrete(3))
    with torch.no_grad():
        last_actor_layer(agent).weight.normal_(0.0, 2.0)  # logits far from uniform, so a wrong sampler shows
        probs = agent.actor(torch.from_numpy(obs[:1])).softmax(-1)[0].numpy()
    actions = script.NumpyPolicy(agent, np.random.default_rng(1)).sample(obs)
    assert probs.max() - probs.min() > 0.2
    np.testing.assert_allclose(np.bincount(actions, minlength=3) / len(obs), probs, atol=0.015)
    # continuous: sample mean and std are the torch actor's mean and exp(log-std)
    agent = script.Agent(2, gym.spaces.Box(-1, 1, (2,)))
    with torch.no_grad():
        last_actor_layer(agent).weight.normal_(0.0, 2.0)
        agent.actor_logstd.copy_(torch.tensor([-1.0, 0.5]))
        mean = agent.actor(torch.from_numpy(obs[:1]))[0].numpy()
    actions = script.NumpyPolicy(agent, np.random.default_rng(1)).sample(obs)
    assert actions.dtype == np.float32
    np.testing.assert_allclose(actions.mean(0), mean, atol=0.03)
    np.testing.assert_allclose(actions.std(0), np.exp([-1.0, 0.5]), rtol=0.03)


@pytest.mark.parametrize("script", GAE_SCRIPTS, ids=lambda m: m.__name__)
def test_running_mean_std_matches_numpy(script):
    rng = np.random.default_rng(1)
    data = rng.normal(3.0, 2.0, size=(300, 4))
    rms = script.RunningMeanStd(4)
    for chunk in np.split(data, 6):
        rms.update(chunk)
    np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-4)
    np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-3)


@pytest.mark.parametrize("script", GAE_SCRIPTS, ids=lambda m: m.__name__)
def test_log_prob_and_entropy_match_torch_distributions(script):
    torch.manual_seed(0)
    agent = script.Agent(2, gym.spaces.Discrete(3))  # logits of 5 states over 3 actions
    logits, actions = torch.randn(5, 3), torch.tensor([0, 2, 1, 1, 0])
    log_prob, entropy = agent.log_prob_entropy(logits, actions)
    reference = torch.distributions.Categorical(logits=logits)
    torch.testing.assert_close(log_prob, reference.log_prob(actions))
    torch.testing.assert_close(entropy, reference.entropy())
    agent = script.Agent(3, gym.spaces.Box(-1, 1, (2,)))  # mean and log-std of a 2-D Gaussian side by side
    params, actions = torch.randn(5, 4), torch.randn(5, 2)
    mean, logstd = params.chunk(2, -1)
    reference = torch.distributions.Independent(torch.distributions.Normal(mean, logstd.exp()), 1)
    log_prob, entropy = agent.log_prob_entropy(params, actions)
    torch.testing.assert_close(log_prob, reference.log_prob(actions))
    torch.testing.assert_close(entropy, reference.entropy())


# --- bad input: one clear error before any training (the toy envs are in conftest.py) ---
@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(env_id="NoSuchEnv-v0"), "unknown env id 'NoSuchEnv-v0'"),
        (dict(env_id="rlref/MultiDiscreteToy-v0"), "action space"),  # the exact sentences: each script's tests
        (dict(env_id="rlref/DictObsToy-v0"), "needs a flat Box observation space"),
        (dict(env_id="rlref/NeedsMissingPackageToy-v0"), "needs a package that is not installed: .*pip install fakesim"),
        (dict(total_timesteps=0), "--total-timesteps must be a positive integer"),
        (dict(eval_checkpoint="no/such/model.pt"), "no such file"),
    ],
)
def test_bad_input_gets_a_clear_error(script, kwargs, message, capsys):
    with pytest.raises(script.UsageError, match=message):
        script.main(script.Args(**kwargs))
    assert "episodic_return" not in capsys.readouterr().out  # nothing was trained


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_capture_video_without_moviepy_is_refused(script, monkeypatch):
    real_find_spec = script.importlib.util.find_spec
    monkeypatch.setattr(script.importlib.util, "find_spec", lambda name: None if name == "moviepy" else real_find_spec(name))
    with pytest.raises(script.UsageError, match="pip install moviepy"):
        script.main(script.Args(capture_video=True))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_cuda_without_a_gpu_is_refused(script):
    with pytest.raises(script.UsageError, match="no CUDA device"):
        script.main(script.Args(cuda=True))


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_cli_prints_one_line_error_and_help_lists_the_flags(script):
    path = script.__name__ + ".py"
    bad = subprocess.run([sys.executable, path, "--env-id", "Nope-v9"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stderr.startswith(f"{path}: error: unknown env id 'Nope-v9'; registered ids look like CartPole-v1")
    assert len(bad.stderr.strip().splitlines()) == 1
    help_text = subprocess.run([sys.executable, path, "--help"], cwd=ROOT, capture_output=True, text=True).stdout
    for field in script.Args.__dataclass_fields__:
        assert "--" + field.replace("_", "-") in help_text, field

