"""Behaviour the vector-env scripts share, checked on each of them: GAE against explicit sums,
gymnasium 1.x episode boundaries, the hand-written log-densities against torch.distributions,
the numpy rollout sampler against the torch actor (and the traps of a copied file: a changed
network, the usual `optimizer.zero_grad()`, a checkpoint that is not ours), and the clear errors."""

import ast
import inspect
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
import tyro
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
        agent.actor[-1].weight.normal_(0.0, 2.0)  # logits far from uniform, so a wrong sampler shows
        probs = agent.actor(torch.from_numpy(obs[:1])).softmax(-1)[0].numpy()
    actions = script.NumpyPolicy(agent, np.random.default_rng(1), obs[:4]).sample(obs)
    assert probs.max() - probs.min() > 0.2
    np.testing.assert_allclose(np.bincount(actions, minlength=3) / len(obs), probs, atol=0.015)
    # continuous: sample mean and std are the torch actor's mean and exp(log-std)
    agent = script.Agent(2, gym.spaces.Box(-1, 1, (2,)))
    with torch.no_grad():
        agent.actor[-1].weight.normal_(0.0, 2.0)
        agent.actor_logstd.copy_(torch.tensor([-1.0, 0.5]))
        mean = agent.actor(torch.from_numpy(obs[:1]))[0].numpy()
    actions = script.NumpyPolicy(agent, np.random.default_rng(1), obs[:4]).sample(obs)
    assert actions.dtype == np.float32
    np.testing.assert_allclose(actions.mean(0), mean, atol=0.03)
    np.testing.assert_allclose(actions.std(0), np.exp([-1.0, 0.5]), rtol=0.03)


# --- traps of a copied file: the numpy copy of the network follows a changed network or refuses it ---
def numpy_copy(script, net, probe):
    """The script's numpy copy of `net` (the actor of a policy script, Q in dqn.py) and its output on probe."""
    if script is dqn:
        copy = dqn.NumpyQ(net, probe)
        return copy(probe)
    agent = script.Agent(probe.shape[1], gym.spaces.Discrete(3))
    agent.actor = net
    return script.NumpyPolicy(agent, np.random.default_rng(0), probe).forward(probe)


def changed_mlp(in_dim, out_dim, hidden, activation):
    return torch.nn.Sequential(torch.nn.Linear(in_dim, hidden), activation(), torch.nn.Linear(hidden, hidden),
                               activation(), torch.nn.Linear(hidden, out_dim))


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("activation, hidden", [(torch.nn.ReLU, 32), (torch.nn.Tanh, 200)])
def test_numpy_copy_follows_a_changed_activation_and_width(script, activation, hidden):
    # The old numpy samplers hard-coded tanh (ReLU in dqn.py) and would silently compute another network here.
    torch.manual_seed(0)
    net = changed_mlp(4, 3, hidden, activation)
    probe = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32) * 3
    with torch.no_grad():
        expected = net(torch.from_numpy(probe)).numpy()
    np.testing.assert_allclose(numpy_copy(script, net, probe), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_numpy_copy_refuses_a_layer_it_does_not_know(script):
    net = changed_mlp(4, 3, 16, torch.nn.GELU)
    with pytest.raises(script.UsageError, match=r"no numpy version of layer GELU.*add one to NUMPY_ACTIVATIONS"):
        numpy_copy(script, net, np.zeros((2, 4), np.float32))


@pytest.mark.parametrize("script", POLICY_SCRIPTS, ids=lambda m: m.__name__)
def test_numpy_policy_refuses_to_sample_when_dist_params_changed(script, monkeypatch):
    # A reader who changes the policy outside agent.actor (here: a temperature on the logits) gets an error,
    # not rollouts from another policy than the one whose log-probs make the loss.
    torch.manual_seed(0)
    agent = script.Agent(4, gym.spaces.Discrete(3))
    probe = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    script.NumpyPolicy(agent, np.random.default_rng(0), probe)  # unchanged: no error
    monkeypatch.setattr(script.Agent, "dist_params", lambda self, obs: self.actor(obs) / 0.5)
    with pytest.raises(script.UsageError, match="NumpyPolicy differs from agent.dist_params"):
        script.NumpyPolicy(agent, np.random.default_rng(0), probe)


def test_numpy_q_refuses_to_act_when_the_q_network_changed():
    class DuelingLikeQ(dqn.QNetwork):  # a forward() that is not the layers' composition
        def forward(self, obs):
            q = super().forward(obs)
            return q - q.mean(-1, keepdim=True)

    torch.manual_seed(0)
    probe = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    with pytest.raises(dqn.UsageError, match="NumpyQ differs from q_network"):
        dqn.NumpyQ(DuelingLikeQ(4, 3), probe)


# --- traps of a copied file: the standard update idiom trains ---
@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_the_update_uses_optimizer_zero_grad_and_moves_every_parameter(script, tmp_path, monkeypatch):
    # ppo.py used to keep its gradients as views of one flat tensor: `optimizer.zero_grad()` (gradients set to
    # None) cut the views and the run trained nothing, silently. Now every update calls optimizer.zero_grad();
    # this counts the calls and checks that a short run moves every parameter away from its initial value.
    monkeypatch.chdir(tmp_path)
    calls = []
    real_zero_grad = torch.optim.Optimizer.zero_grad
    monkeypatch.setattr(torch.optim.Optimizer, "zero_grad", lambda self, *a, **k: (calls.append(1), real_zero_grad(self, *a, **k)))
    args = script.Args(seed=1, total_timesteps=4096, save_model=True, eval_episodes=1)
    if script is dqn:
        args = script.Args(seed=1, total_timesteps=3000, learning_starts=1000, save_model=True, eval_episodes=1)
    result = script.main(args)
    saved = torch.load(result["model_path"], weights_only=True)["model"]
    torch.manual_seed(1)  # the same initial weights as the run's (built right after seeding)
    initial = dqn.QNetwork(4, 2) if script is dqn else script.Agent(4, gym.spaces.Discrete(2))
    assert len(calls) > 0
    assert set(saved) == set(initial.state_dict())
    for name, value in initial.state_dict().items():
        assert not torch.equal(saved[name], value), f"{name} did not move"


@pytest.mark.parametrize("script", [actor_critic, ppo], ids=lambda m: m.__name__)
def test_the_standard_update_idiom_lowers_the_loss(script):
    torch.manual_seed(0)
    agent = script.Agent(4, gym.spaces.Discrete(2))
    optimizer = torch.optim.Adam(agent.parameters(), lr=1e-2, eps=1e-5, fused=True)
    obs, actions, returns = torch.randn(64, 4), torch.randint(0, 2, (64,)), torch.randn(64)
    losses = []
    for _ in range(30):
        logprob, _ = agent.log_prob_entropy(agent.dist_params(obs), actions)
        loss = -logprob.mean() + 0.5 * ((agent.value(obs) - returns) ** 2).mean()  # imitate the actions, fit V
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(agent.parameters(), 0.5)
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_no_parameter_or_gradient_is_rebound(script):
    source = inspect.getsource(script)
    assert "flatten_parameters" not in source
    assert ".data =" not in source and ".grad =" not in source
    assert "optimizer.zero_grad()" in inspect.getsource(script.main)


# --- traps of a copied file: loading a checkpoint runs no code ---
class RunsCode:
    def __reduce__(self):
        return (os.makedirs, ("pwned",))


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_a_foreign_checkpoint_gets_a_clear_error_and_runs_no_code(script, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    torch.save({"model": RunsCode(), "args": {"env_id": "CartPole-v1"}}, "foreign.pt")  # a pickled object
    with open("garbage.pt", "wb") as f:
        f.write(b"not a checkpoint")
    torch.save({"model": {}, "args": {"env_id": "CartPole-v1", "no_such_flag": 1}}, "other_script.pt")
    for path in ["foreign.pt", "garbage.pt", "other_script.pt"]:
        with pytest.raises(script.UsageError, match=f"{path}: not a checkpoint written by this script's --save-model"):
            script.main(script.Args(eval_checkpoint=path))
    assert not os.path.exists("pwned")  # torch.load(weights_only=False) would have created it
    assert "weights_only=False" not in inspect.getsource(script)


# --- one Agent shape, one script name ---
@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_the_script_name_comes_from_the_file(script):
    assert script.Args().exp_name == script.__name__
    module = ast.parse(inspect.getsource(script))
    strings = [node.value for node in ast.walk(module) if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    assert not [s for s in strings[1:] if script.__name__ + ".py" in s]  # strings[0] is the module docstring


@pytest.mark.parametrize("script", [actor_critic, ppo], ids=lambda m: m.__name__)
@pytest.mark.parametrize("shared_trunk", [False, True])
def test_the_value_loss_reaches_the_actor_only_through_a_shared_trunk(script, shared_trunk):
    torch.manual_seed(0)
    agent = script.Agent(4, gym.spaces.Discrete(2), shared_trunk=shared_trunk)
    obs = torch.randn(8, 4)
    (agent.value(obs) - 1.0).square().mean().backward()
    first_actor_layer = agent.actor[0].weight
    assert (first_actor_layer.grad is not None and first_actor_layer.grad.abs().sum() > 0) == shared_trunk
    assert agent.actor[-1].weight.grad is None  # the actor's last layer is never the critic's
    n_params = sum(p.numel() for p in agent.parameters())
    assert n_params == (4 * 64 + 64 + 64 * 64 + 64) * (1 if shared_trunk else 2) + (64 * 2 + 2) + (64 + 1)


@pytest.mark.parametrize("script", GAE_SCRIPTS, ids=lambda m: m.__name__)
def test_normalizer_matches_statistics_computed_by_hand(script):
    # Observations: normalized by the mean and variance of every observation seen so far, this step's included.
    # Rewards: divided by the std of the discounted returns seen so far, a return restarting after its episode ends.
    rng, gamma = np.random.default_rng(1), 0.9
    normalizer = script.Normalizer(obs_dim=3, num_envs=2, gamma=gamma, enabled=True)
    seen_obs, seen_returns, discounted_return = [], [], np.zeros(2)
    for t in range(60):
        raw_obs, raw_next_obs = rng.normal(3.0, 2.0, (2, 3)), rng.normal(3.0, 2.0, (2, 3))
        reward, done = rng.normal(1.0, 1.0, 2), np.array([t % 7 == 6, t % 11 == 10])
        obs, next_obs, scaled_reward = normalizer.step(raw_obs, raw_next_obs, reward, done)
        seen_obs.append(raw_obs)
        discounted_return = gamma * discounted_return + reward
        seen_returns.append(discounted_return.copy())
        discounted_return[done] = 0.0
        if t < 10:  # the statistics start from a prior of mean 0, var 1 with a weight of 1e-4 samples
            continue
        mean, var = np.concatenate(seen_obs).mean(0), np.concatenate(seen_obs).var(0)
        for got, raw in [(obs, raw_obs), (next_obs, raw_next_obs)]:
            np.testing.assert_allclose(got, np.clip((raw - mean) / np.sqrt(var + 1e-8), -10, 10), rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(scaled_reward, reward / np.concatenate(seen_returns).std(), rtol=2e-3)
    raw_obs = rng.normal(size=(2, 3))
    off = script.Normalizer(obs_dim=3, num_envs=2, gamma=gamma, enabled=False)  # discrete actions: a float32 cast
    obs, _, reward = off.step(raw_obs, raw_obs, np.ones(2), np.zeros(2, bool))
    assert obs.dtype == np.float32 and np.allclose(obs, raw_obs) and np.array_equal(reward, np.ones(2))


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
        (dict(env_id="NoSuchEnv-v0"), "NoSuchEnv-v0: Environment `NoSuchEnv` doesn't exist"),
        (dict(env_id="rlref/MultiDiscreteToy-v0"), "action space"),  # the exact sentences: each script's tests
        (dict(env_id="rlref/DictObsToy-v0"), "needs a flat Box observation space"),
        (dict(env_id="rlref/NeedsMissingPackageToy-v0"), "NeedsMissingPackageToy-v0: FakeSim is not installed, run `pip install fakesim`"),
        (dict(total_timesteps=0), "--total-timesteps must be a positive integer"),
        (dict(eval_checkpoint="no/such/model.pt"), "not a checkpoint .*FileNotFoundError"),
    ],
)
def test_bad_input_gets_a_clear_error(script, kwargs, message, capsys):
    with pytest.raises(script.UsageError, match=message):
        script.main(script.Args(**kwargs))
    assert "episodic_return" not in capsys.readouterr().out  # nothing was trained


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_capture_video_without_moviepy_is_refused(script, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)  # RecordVideo may make its videos/ folder before it looks for moviepy
    monkeypatch.setitem(sys.modules, "moviepy", None)  # `import moviepy` now raises ImportError
    with pytest.raises(script.UsageError, match="(?i)moviepy is not installed, run `pip install"):
        script.main(script.Args(capture_video=True))
    assert "episodic_return" not in capsys.readouterr().out  # refused before any training


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_cuda_without_a_gpu_is_refused(script):
    with pytest.raises(script.UsageError, match="no CUDA device"):
        script.main(script.Args(cuda=True))


RUN_AS_MAIN = """
import runpy, sys
for path in sys.argv[1:]:  # each script as `python SCRIPT --env-id Nope-v9`, in one interpreter (one torch import)
    sys.argv = [path, "--env-id", "Nope-v9"]
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as e:
        print(repr(e.code))
"""


@pytest.fixture(scope="module")
def cli_errors() -> dict:
    paths = [script.__name__ + ".py" for script in ALL_SCRIPTS]
    run = subprocess.run([sys.executable, "-c", RUN_AS_MAIN, *paths], cwd=ROOT, capture_output=True, text=True)
    return dict(zip(paths, run.stdout.splitlines()))


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_cli_prints_one_line_error_and_help_lists_the_flags(script, cli_errors, capsys, monkeypatch):
    path = script.__name__ + ".py"
    message = ast.literal_eval(cli_errors[path])  # SystemExit(str): Python prints it to stderr as one line and exits with 1
    assert message.startswith(f"{path}: error: Nope-v9: Environment `Nope` doesn't exist")
    assert "\n" not in message
    monkeypatch.setenv("COLUMNS", "250")  # one line per flag's help
    with pytest.raises(SystemExit):
        tyro.cli(script.Args, args=["--help"])  # what `python SCRIPT --help` prints
    help_text = capsys.readouterr().out
    for field in script.Args.__dataclass_fields__:
        assert "--" + field.replace("_", "-") in help_text, field
    assert HELP_PHRASES[script] in help_text  # a field's docstring is its --help


HELP_PHRASES = {
    reinforce: "--weight {total,reward-to-go}",
    actor_critic: "the critic shares all but the last layer with the actor",
    dqn: "the online network picks argmax_a' Q(s', a')",
    ppo: "the ratio clipping epsilon of PPO-Clip",
}

