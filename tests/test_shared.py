"""Behaviour the vector-env scripts share, checked on each of them: GAE against explicit sums,
gymnasium 1.x episode boundaries, acting with the torch policy, the traps of a copied file (a
changed network or optimizer, the usual `optimizer.zero_grad()`, a checkpoint that is not ours),
valid JSON, and the clear errors."""

import ast
import inspect
import json
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
# the ones that learn from transitions that end at an autoreset
NEXT_OBS_SCRIPTS = [actor_critic, dqn, ppo]


def short_args(script, **kwargs):
    """Args for a run of a second or less."""
    if script is dqn:
        return dqn.Args(total_timesteps=1500, learning_starts=500, batch_size=64, **kwargs)
    return script.Args(total_timesteps=2048, **kwargs)


# --- GAE against explicit sums ---
def brute_force_gae(rewards, values, next_values, dones, gamma, lam):
    """A_t = sum_{l>=0} (gamma*lam)^l delta_{t+l}, the sum stopping where the episode ends."""
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
    """Catches GAE that sums past an episode end or discounts by gamma alone."""
    rng = np.random.default_rng(0)
    T, N = 12, 3
    rewards, values = rng.normal(size=(T, N)), rng.normal(size=(T, N))
    next_values = rng.normal(size=(T, N))
    dones = (rng.random((T, N)) < 0.25).astype(np.float64)
    # some ends are terminations, the others truncations
    terminated = dones * (rng.random((T, N)) < 0.5)
    next_values = next_values * (1 - terminated)
    got = script.gae(rewards, values, next_values, dones, 0.97, 0.9)
    np.testing.assert_allclose(
        got, brute_force_gae(rewards, values, next_values, dones, 0.97, 0.9), rtol=1e-10
    )


@pytest.mark.parametrize("script", GAE_SCRIPTS, ids=lambda m: m.__name__)
def test_gae_lambda_one_is_monte_carlo_return_minus_value(script):
    """Catches a lambda that enters GAE other than as gamma*lambda."""
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
    """Catches a TD error with V(s_t) and V(s_{t+1}) swapped."""
    rng = np.random.default_rng(2)
    rewards, values, next_values = (
        rng.normal(size=(6, 2)),
        rng.normal(size=(6, 2)),
        rng.normal(size=(6, 2)),
    )
    dones = np.zeros((6, 2))
    adv = script.gae(rewards, values, next_values, dones, 0.99, 0.0)
    np.testing.assert_allclose(adv, rewards + 0.99 * next_values - values, rtol=1e-12)


@pytest.mark.parametrize("script", GAE_SCRIPTS, ids=lambda m: m.__name__)
def test_gae_truncation_bootstraps_and_termination_does_not(script):
    """Catches GAE that masks the bootstrap by done (it only cuts the advantage's sum)."""
    # The last step of an episode: truncated -> target r + gamma*V(final obs); terminated -> target
    # r.
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
    """Catches the next episode's advantages leaking into this one's."""
    # Env ends at t=1; the huge deltas of the next episode (t=2,3) must not reach t<=1.
    rewards = np.array([[1.0], [1.0], [100.0], [100.0]])
    values, next_values = np.zeros((4, 1)), np.zeros((4, 1))
    dones = np.array([[0.0], [1.0], [0.0], [0.0]])
    adv = script.gae(rewards, values, next_values, dones, 1.0, 1.0)
    assert adv[:2, 0].tolist() == [2.0, 1.0]
    assert adv[2:, 0].tolist() == [200.0, 100.0]


@pytest.mark.parametrize("script", NEXT_OBS_SCRIPTS, ids=lambda m: m.__name__)
def test_true_next_obs_is_the_final_obs_at_an_autoreset(script):
    """Catches the reset obs returned as s_{t+1} at an episode end."""
    # A 5-step time limit: the 5th step truncates; SAME_STEP returns the next episode's first
    # obs, and the transition's s_{t+1} must be the obs a plain env reaches after 5 steps.
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.make("CartPole-v1", max_episode_steps=5)] * 2,
        autoreset_mode=AutoresetMode.SAME_STEP,
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
    np.testing.assert_array_equal(script.true_next_obs(obs, not_done, {}), obs)


# --- acting: the rollout samples the torch policy that the update differentiates ---
class ActionRecorder(gym.Env):
    """Three actions, five-step episodes; every action it is sent is kept in `actions`."""

    observation_space = gym.spaces.Box(-1, 1, (2,))
    action_space = gym.spaces.Discrete(3)
    actions = []

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        ActionRecorder.actions.append(int(action))
        return np.zeros(2, np.float32), 1.0, False, False, {}


gym.register("rlref/ActionRecorder-v0", entry_point=ActionRecorder, max_episode_steps=5)


@pytest.mark.parametrize("script", POLICY_SCRIPTS, ids=lambda m: m.__name__)
def test_the_envs_get_actions_sampled_from_agent_dist(script, monkeypatch):
    """Catches acting with another policy than agent.dist (an argmax, a stale or numpy copy of the
    actor): with pi fixed at (0.7, 0.2, 0.1), the envs must see those frequencies."""
    probs = torch.tensor([0.7, 0.2, 0.1])

    def fixed_dist(self, obs):  # through the actor, so the update still has a graph
        logits = self.actor(obs) * 0.0 + probs.log()
        return torch.distributions.Categorical(logits=logits)

    monkeypatch.setattr(script.Agent, "dist", fixed_dist)
    ActionRecorder.actions.clear()
    script.main(script.Args(env_id="rlref/ActionRecorder-v0", total_timesteps=6000))
    counts = np.bincount(ActionRecorder.actions, minlength=3)
    np.testing.assert_allclose(counts / counts.sum(), probs.numpy(), atol=0.02)


@pytest.mark.parametrize("script", POLICY_SCRIPTS, ids=lambda m: m.__name__)
def test_a_box_action_log_prob_sums_over_its_dims(script):
    """Catches a Normal without Independent: its log_prob per action dim would broadcast against
    the per-state advantages. pi(a|s) of a diagonal Gaussian is the product over the dims."""
    torch.manual_seed(0)
    agent = script.Agent(3, gym.spaces.Box(-1, 1, (2,)))
    with torch.no_grad():
        agent.actor_logstd.copy_(torch.tensor([-0.5, 0.3]))
    obs, actions = torch.randn(6, 3), torch.randn(6, 2)
    normal = torch.distributions.Normal(agent.actor(obs), agent.actor_logstd.exp())
    dist = agent.dist(obs)
    torch.testing.assert_close(dist.log_prob(actions), normal.log_prob(actions).sum(-1))
    torch.testing.assert_close(dist.entropy(), normal.entropy().sum(-1))
    torch.testing.assert_close(dist.mode, agent.actor(obs))  # the evaluation's action: the mean


# --- traps of a copied file: a reader's usual edits just work ---
def edited_mlp(in_dim, out_dim, out_std, hidden=64):
    """A reader's edit of mlp(): a LayerNorm after the first layer, GELU, and width 256."""
    layers = [
        torch.nn.Linear(in_dim, 256),
        torch.nn.LayerNorm(256),
        torch.nn.GELU(),
        torch.nn.Linear(256, 256),
        torch.nn.GELU(),
        torch.nn.Linear(256, out_dim),
    ]
    return torch.nn.Sequential(*layers)


class EditedQNetwork(torch.nn.Sequential):
    """The same edit of dqn.py's QNetwork."""

    def __init__(self, obs_dim, num_actions, hidden=128):
        super().__init__(*edited_mlp(obs_dim, num_actions, 1.0))


def rmsprop(params, lr, eps=1e-8, foreach=None):
    """A reader's swap of the optimizer: `fused=True` or Adam-only arguments would fail here;
    `foreach`, which every torch optimizer takes, passes."""
    return torch.optim.RMSprop(params, lr=lr, eps=eps, foreach=foreach)


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_a_layernorm_gelu_wider_network_and_rmsprop_train_and_evaluate(
    script, tmp_path, monkeypatch
):
    """Catches a speed device that breaks a reader's edit (the numpy copies of the network refused
    GELU and drifted from a LayerNorm; `fused=True` refused RMSprop): the edited network must be the
    one trained, saved and evaluated."""
    monkeypatch.chdir(tmp_path)
    if script is dqn:
        monkeypatch.setattr(dqn, "QNetwork", EditedQNetwork)
    else:
        monkeypatch.setattr(script, "mlp", edited_mlp)
    monkeypatch.setattr(torch.optim, "Adam", rmsprop)
    torch.manual_seed(1)  # the initial weights of the run, which seeds torch with 1 first
    initial = EditedQNetwork(4, 2) if script is dqn else script.Agent(4, gym.spaces.Discrete(2))
    result = script.main(short_args(script, seed=1, save_model=True, eval_episodes=2))
    saved = torch.load(result["model_path"], weights_only=True)["model"]
    layer_norm = [k for k in saved if k.endswith("1.weight") and saved[k].dim() == 1]
    assert layer_norm, "the LayerNorm is not in the saved model"
    for name in layer_norm:
        assert not torch.equal(saved[name], initial.state_dict()[name]), f"{name} did not train"
    assert result["eval_mean_return"] > 0


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_learning_rate_annealing_sets_every_parameter_group(script, monkeypatch):
    """Catches `optimizer.param_groups[0]["lr"] = ...`: a reader who gives the actor and the critic
    groups of their own would anneal only the first."""
    optimizers = []
    adam = torch.optim.Adam

    def adam_in_two_groups(params, lr, eps=1e-8, foreach=None):
        params = list(params)
        groups = [{"params": params[: len(params) // 2]}, {"params": params[len(params) // 2 :]}]
        optimizers.append(adam(groups, lr=lr, eps=eps, foreach=foreach))
        return optimizers[-1]

    monkeypatch.setattr(torch.optim, "Adam", adam_in_two_groups)
    script.main(short_args(script, anneal_lr=True))
    first, second = optimizers[0].param_groups  # the policy's (or Q's) optimizer
    assert first["lr"] == second["lr"] < script.Args().learning_rate


# --- traps of a copied file: the standard update idiom trains ---
@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_the_update_uses_optimizer_zero_grad_and_moves_every_parameter(
    script, tmp_path, monkeypatch
):
    """Catches an update that trains nothing, silently: ppo.py once kept its gradients as views of
    one flat tensor, and `optimizer.zero_grad()` (gradients set to None) cut the views. This counts
    the calls and checks that a short run moves every parameter away from its initial value."""
    monkeypatch.chdir(tmp_path)
    calls = []
    real_zero_grad = torch.optim.Optimizer.zero_grad
    monkeypatch.setattr(
        torch.optim.Optimizer,
        "zero_grad",
        lambda self, *a, **k: (calls.append(1), real_zero_grad(self, *a, **k)),
    )
    args = script.Args(seed=1, total_timesteps=4096, save_model=True, eval_episodes=1)
    if script is dqn:
        args = script.Args(
            seed=1, total_timesteps=3000, learning_starts=1000, save_model=True, eval_episodes=1
        )
    result = script.main(args)
    saved = torch.load(result["model_path"], weights_only=True)["model"]
    torch.manual_seed(1)  # the same initial weights as the run's (built right after seeding)
    initial = dqn.QNetwork(4, 2) if script is dqn else script.Agent(4, gym.spaces.Discrete(2))
    assert len(calls) > 0
    assert set(saved) == set(initial.state_dict())
    for name, value in initial.state_dict().items():
        assert not torch.equal(saved[name], value), f"{name} did not move"


# --- traps of a copied file: loading a checkpoint says what is wrong and runs no code ---
class RunsCode:
    def __reduce__(self):
        return (os.makedirs, ("pwned",))


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_a_bad_checkpoint_gets_an_error_that_says_what_is_wrong(script, tmp_path, monkeypatch):
    """Catches one catch-all message (and a foreign pickle running code): each way a file can be
    wrong gets its own one-line error."""
    monkeypatch.chdir(tmp_path)
    good = script.main(short_args(script, save_model=True, eval_episodes=1))["model_path"]
    checkpoint = torch.load(good, weights_only=True)
    torch.save({"model": RunsCode(), "args": {"env_id": "CartPole-v1"}}, "foreign.pt")
    with open("garbage.pt", "wb") as f:
        f.write(b"not a checkpoint")
    torch.save({**checkpoint, "args": {**checkpoint["args"], "no_such_flag": 1}}, "other.pt")
    torch.save(checkpoint["model"], "state_dict.pt")  # a bare state_dict, as another tool saves
    first_layer = next(k for k in checkpoint["model"] if k.endswith("weight"))
    wider = {**checkpoint["model"], first_layer: torch.zeros(7, 4)}
    torch.save({**checkpoint, "model": wider}, "wider.pt")
    expected = {
        "missing.pt": r"missing.pt: torch.load\(weights_only=True\) cannot read it \(FileNotFound",
        "foreign.pt": r"foreign.pt: torch.load\(weights_only=True\) cannot read it \(Unpickling",
        "garbage.pt": r"garbage.pt: torch.load\(weights_only=True\) cannot read it",
        "other.pt": r"other.pt: not saved by this script \(TypeError.*no_such_flag",
        "state_dict.pt": r"state_dict.pt: not saved by this script \(KeyError\('args'\)\)",
        "wider.pt": f"wider.pt: the saved model does not fit: .*size mismatch for {first_layer}",
    }
    for path, message in expected.items():
        with pytest.raises(script.UsageError, match=message) as error:
            script.main(script.Args(eval_checkpoint=path))
        assert "\n" not in str(error.value)
    assert not os.path.exists("pwned")  # torch.load(weights_only=False) would have created it


# --- one output convention: the last stdout line is valid JSON ---
class Endless(gym.Env):
    """Episodes that never end within a short run."""

    observation_space = gym.spaces.Box(-1, 1, (2,))
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, False, {}


gym.register("rlref/Endless-v0", entry_point=Endless, max_episode_steps=100_000)


@pytest.mark.parametrize("script", [actor_critic, dqn, ppo], ids=lambda m: m.__name__)
def test_the_result_is_valid_json_when_no_episode_ended(script):
    """Catches a NaN in the final JSON (json.dumps writes NaN, which is not JSON): the mean of no
    returns is null."""
    result = script.main(short_args(script, env_id="rlref/Endless-v0"))
    assert result["mean_return_last10"] is None
    assert json.loads(json.dumps(result, allow_nan=False)) == result


# --- one Agent shape, one script name ---
@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_the_script_name_comes_from_the_file(script):
    """Catches a copied file (my_ppo.py) that names its runs and errors after the original."""
    assert script.Args().exp_name == script.__name__
    module = ast.parse(inspect.getsource(script))
    strings = [
        node.value
        for node in ast.walk(module)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    # strings[0] is the module docstring
    assert not [s for s in strings[1:] if script.__name__ + ".py" in s]


@pytest.mark.parametrize("script", [actor_critic, ppo], ids=lambda m: m.__name__)
@pytest.mark.parametrize("shared_trunk", [False, True])
def test_the_value_loss_reaches_the_actor_only_through_a_shared_trunk(script, shared_trunk):
    """Catches a critic that shares the actor's layers without --shared-trunk (or not with it)."""
    torch.manual_seed(0)
    agent = script.Agent(4, gym.spaces.Discrete(2), shared_trunk=shared_trunk)
    obs = torch.randn(8, 4)
    (agent.value(obs) - 1.0).square().mean().backward()
    first_actor_layer = agent.actor[0].weight
    assert (
        first_actor_layer.grad is not None and first_actor_layer.grad.abs().sum() > 0
    ) == shared_trunk
    assert agent.actor[-1].weight.grad is None  # the actor's last layer is never the critic's
    n_params = sum(p.numel() for p in agent.parameters())
    assert n_params == (4 * 64 + 64 + 64 * 64 + 64) * (1 if shared_trunk else 2) + (64 * 2 + 2) + (
        64 + 1
    )


@pytest.mark.parametrize("script", POLICY_SCRIPTS, ids=lambda m: m.__name__)
def test_normalizer_matches_statistics_computed_by_hand(script):
    """Catches wrong running statistics. Observations: normalized by the mean and variance of every
    observation seen so far, this step's included. Rewards: divided by the std of the discounted
    returns seen so far, a return restarting after its episode ends. And a state_dict that
    loses part of them."""
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
        # the statistics start from a prior of mean 0, var 1 with a weight of 1e-4 samples
        if t < 10:
            continue
        mean, var = np.concatenate(seen_obs).mean(0), np.concatenate(seen_obs).var(0)
        for got, raw in [(obs, raw_obs), (next_obs, raw_next_obs)]:
            np.testing.assert_allclose(
                got, np.clip((raw - mean) / np.sqrt(var + 1e-8), -10, 10), rtol=2e-3, atol=2e-3
            )
        np.testing.assert_allclose(
            scaled_reward, reward / np.concatenate(seen_returns).std(), rtol=2e-3
        )
    # a checkpoint's statistics: another Normalizer loaded with them scales alike, and keeps
    # updating alike
    copy = script.Normalizer(obs_dim=3, num_envs=2, gamma=gamma, enabled=True)
    copy.load_state_dict(normalizer.state_dict())
    raw_obs = rng.normal(3.0, 2.0, (2, 3))
    np.testing.assert_array_equal(copy.obs(raw_obs, update=True), normalizer.obs(raw_obs, True))
    assert vars(copy.return_rms) == pytest.approx(vars(normalizer.return_rms))
    # discrete actions: a float32 cast
    off = script.Normalizer(obs_dim=3, num_envs=2, gamma=gamma, enabled=False)
    obs, _, reward = off.step(raw_obs, raw_obs, np.ones(2), np.zeros(2, bool))
    assert (
        obs.dtype == np.float32 and np.allclose(obs, raw_obs) and np.array_equal(reward, np.ones(2))
    )


# --- bad input: one clear error before any training (the toy envs are in conftest.py) ---
@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(env_id="NoSuchEnv-v0"), "NoSuchEnv-v0: Environment `NoSuchEnv` doesn't exist"),
        # the exact sentences: each script's tests
        (dict(env_id="rlref/MultiDiscreteToy-v0"), "action"),
        (dict(env_id="rlref/DictObsToy-v0"), "needs a flat Box observation"),
        (
            dict(env_id="rlref/NeedsMissingPackageToy-v0"),
            "NeedsMissingPackageToy-v0: FakeSim is not installed, run `pip install fakesim`",
        ),
        (dict(total_timesteps=0), "--total-timesteps must be positive"),
        (dict(gamma=1.5), "--gamma must be in \\[0, 1\\], got 1.5"),
        (dict(eval_checkpoint="no/such/model.pt"), "no/such/model.pt: .* \\(FileNotFoundError\\)"),
    ],
)
def test_bad_input_gets_a_clear_error(script, kwargs, message, capsys):
    """Catches settings that crash deep in the loop instead of a one-line error."""
    with pytest.raises(script.UsageError, match=message):
        script.main(script.Args(**kwargs))
    assert "episodic_return" not in capsys.readouterr().out  # nothing was trained


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_capture_video_without_moviepy_is_refused(script, monkeypatch, tmp_path, capsys):
    """Catches --capture-video failing at the first episode's end instead of at the start."""
    # RecordVideo may make its videos/ folder before it looks for moviepy
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "moviepy", None)  # `import moviepy` now raises ImportError
    with pytest.raises(script.UsageError, match="(?i)moviepy is not installed, run `pip install"):
        script.main(script.Args(capture_video=True))
    assert "episodic_return" not in capsys.readouterr().out  # refused before any training


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_cuda_without_a_gpu_is_refused(script):
    """Catches --cuda on a machine without CUDA failing inside torch instead of in one line."""
    with pytest.raises(script.UsageError, match="no CUDA device"):
        script.main(script.Args(cuda=True))


RUN_AS_MAIN = """
import runpy, sys
# each script as `python SCRIPT --env-id Nope-v9`, in one interpreter (one torch import)
for path in sys.argv[1:]:
    sys.argv = [path, "--env-id", "Nope-v9"]
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as e:
        print(repr(e.code))
"""


@pytest.fixture(scope="module")
def cli_errors() -> dict:
    paths = [script.__name__ + ".py" for script in ALL_SCRIPTS]
    run = subprocess.run(
        [sys.executable, "-c", RUN_AS_MAIN, *paths], cwd=ROOT, capture_output=True, text=True
    )
    return dict(zip(paths, run.stdout.splitlines(), strict=True))


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_cli_prints_one_line_error_and_help_lists_the_flags(
    script, cli_errors, capsys, monkeypatch
):
    """Catches a traceback instead of a one-line CLI error, and a flag missing from --help."""
    path = script.__name__ + ".py"
    # SystemExit(str): Python prints it to stderr as one line and exits with 1
    message = ast.literal_eval(cli_errors[path])
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
    actor_critic: "the critic shares the actor's layers but the last",
    dqn: "the online net picks argmax_a' Q(s', a')",
    ppo: "PPO-Clip's epsilon",
}


# --- issue 31's speed levers change no number ---
@pytest.mark.parametrize("script", POLICY_SCRIPTS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("rows", [1, 3])
def test_update_rms_gives_gymnasiums_statistics_bit_for_bit(script, rows):
    """Catches a one-env shortcut that drifts from RunningMeanStd.update: a variance taken as 0
    for more than one row, a count of 1, a mean of the first row only."""
    from gymnasium.wrappers.utils import RunningMeanStd

    rng = np.random.default_rng(rows)
    ours, theirs = RunningMeanStd(shape=(5,)), RunningMeanStd(shape=(5,))
    for _ in range(20):
        x = rng.normal(3.0, 2.0, size=(rows, 5))
        script.update_rms(ours, x)
        theirs.update(x)
    assert np.array_equal(ours.mean, theirs.mean)
    assert np.array_equal(ours.var, theirs.var)
    assert ours.count == theirs.count


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_the_speed_levers_train_the_same_parameters(script, tmp_path, monkeypatch):
    """Catches a speed lever that changes what is learned: without `foreach=True`, with the
    distributions' argument checks on and gymnasium's own RunningMeanStd.update, a run of one env
    (Pendulum, so the normalizer runs) must save the same weights, bit for bit."""
    monkeypatch.chdir(tmp_path)
    kwargs = {"seed": 3, "save_model": True, "eval_episodes": 1}
    if script is not dqn:
        kwargs["env_id"] = "Pendulum-v1"
        kwargs["num_episodes" if script is reinforce else "num_envs"] = 1
    fast = script.main(short_args(script, exp_name="fast", **kwargs))
    adam = torch.optim.Adam
    monkeypatch.setattr(torch.optim, "Adam", lambda *a, foreach=None, **k: adam(*a, **k))
    if script is not dqn:
        monkeypatch.setattr(script.Distribution, "set_default_validate_args", lambda value: None)
        monkeypatch.setattr(script, "update_rms", lambda rms, x: rms.update(x))
    monkeypatch.setattr(torch.distributions.Distribution, "_validate_args", True)
    plain = script.main(short_args(script, exp_name="plain", **kwargs))
    fast_model = torch.load(fast["model_path"], weights_only=True)["model"]
    plain_model = torch.load(plain["model_path"], weights_only=True)["model"]
    assert fast_model.keys() == plain_model.keys()
    for name in fast_model:
        assert torch.equal(fast_model[name], plain_model[name]), name
