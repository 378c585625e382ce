"""Tests of reinforce.py: returns and the loss against hand computation, episode collection
on gymnasium 1.x, that it learns, save/evaluate, wandb offline, and the clear errors."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import reinforce


# --- returns against explicit sums ---
def test_reward_to_go_matches_explicit_sums():
    """Catches reward-to-go without gamma or summed from the wrong end."""
    rewards = np.array([1.0, -2.0, 0.5, 3.0])
    gamma = 0.9
    expected = [sum(gamma ** (k - t) * rewards[k] for k in range(t, 4)) for t in range(4)]
    np.testing.assert_allclose(reinforce.reward_to_go(rewards, gamma), expected)


def test_reward_to_go_bootstraps_from_the_last_value():
    """Catches last_value added without its gamma^(T-t)."""
    rewards = np.array([1.0, 1.0, 1.0])
    gamma, v_final = 0.5, 8.0
    # G_2 = 1 + 0.5*8 = 5; G_1 = 1 + 0.5*5 = 3.5; G_0 = 1 + 0.5*3.5 = 2.75
    np.testing.assert_allclose(
        reinforce.reward_to_go(rewards, gamma, last_value=v_final), [2.75, 3.5, 5.0]
    )


def test_total_return_weights_every_step_by_the_discounted_episode_return():
    """Catches --weight total giving each step its reward-to-go instead of G_0."""
    rewards = np.array([1.0, 2.0, 3.0])
    gamma = 0.5
    g0 = 1.0 + 0.5 * 2.0 + 0.25 * 3.0
    np.testing.assert_allclose(reinforce.total_return(rewards, gamma), [g0, g0, g0])
    # gamma=1: the plain sum
    np.testing.assert_allclose(reinforce.total_return(rewards, 1.0), [6.0, 6.0, 6.0])


def test_policy_gradient_loss_on_a_two_step_batch_by_hand():
    """Catches a wrong sign or a sum for the mean in -E[w log pi]."""
    # Two steps, two actions each with logits (0, ln 3) -> pi = (1/4, 3/4).
    logprobs = torch.log(torch.tensor([0.25, 0.75]))  # a_0 = 0, a_1 = 1
    weights = torch.tensor([2.0, -1.0])
    # L = -(2*ln(1/4) + (-1)*ln(3/4)) / 2 = (2*1.386294 - 0.287682) / 2 = 1.242453
    assert reinforce.policy_gradient_loss(logprobs, weights).item() == pytest.approx(
        1.242453, abs=1e-6
    )


def test_a_baseline_leaves_the_expected_policy_gradient_unchanged():
    """Catches a baseline that biases the expected gradient (one that depends on the action)."""
    # E_a~pi[ grad log pi(a) * b ] = b * grad sum_a pi(a) = 0: the exact expectation over a 3-action
    # softmax
    logits = torch.tensor([0.3, -1.0, 0.8], requires_grad=True)
    # the weight (e.g. reward-to-go) that each action would get
    weights = torch.tensor([1.0, 4.0, -2.0])

    def expected_gradient(baseline: float) -> torch.Tensor:
        pi = logits.softmax(-1).detach()
        logp = logits.log_softmax(-1)
        loss = sum(
            pi[a] * reinforce.policy_gradient_loss(logp[a : a + 1], weights[a : a + 1] - baseline)
            for a in range(3)
        )
        return torch.autograd.grad(loss, logits)[0]

    torch.testing.assert_close(expected_gradient(0.0), expected_gradient(5.0))
    torch.testing.assert_close(expected_gradient(0.0), expected_gradient(-3.0))
    assert expected_gradient(0.0).abs().sum() > 0.5  # the gradient itself is not zero


def test_value_loss_by_hand():
    """Catches V's regression loss without its 0.5, without the square, or against -G."""
    values, returns = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([3.0, -1.0, 2.0])
    assert reinforce.value_loss(values, returns).item() == pytest.approx(0.5 * (4 + 1 + 0) / 3)


def test_policy_gradient_loss_gradient_on_the_logits_by_hand():
    """Catches a policy gradient on the logits other than w (onehot(a) - pi)."""
    # d/dlogits of -w*log softmax(logits)[a] = -w*(onehot(a) - pi);
    # for one step, pi = (1/4, 3/4), a = 0, w = 2
    logits = torch.tensor([[0.0, np.log(3.0)]], requires_grad=True)
    logprob = logits.log_softmax(-1)[:, 0]
    reinforce.policy_gradient_loss(logprob, torch.tensor([2.0])).backward()
    np.testing.assert_allclose(logits.grad.numpy(), [[-2.0 * 0.75, 2.0 * 0.75]], rtol=1e-6)


# --- it learns, and round-trips through save/evaluate ---
@pytest.mark.slow  # a learning threshold
def test_cartpole_solves_and_the_saved_greedy_policy_holds(tmp_path, monkeypatch):
    """Catches a REINFORCE that no longer solves CartPole with its defaults, or a saved policy that
    does not play as trained."""
    monkeypatch.chdir(tmp_path)
    # Default args but a shorter budget: nothing anneals by default, so these are the first 60k
    # steps of the full run (seed 1 ends them at 500).
    result = reinforce.main(
        reinforce.Args(seed=1, save_model=True, total_timesteps=60_000, eval_episodes=3)
    )
    assert result["mean_return_last10"] >= 475  # random play: about 20
    assert result["eval_mean_return"] >= 475
    returns_a = reinforce.evaluate(result["model_path"], eval_episodes=2, seed=5)
    assert returns_a == reinforce.evaluate(result["model_path"], eval_episodes=2, seed=5)


def test_each_batch_is_whole_episodes_and_only_those(capsys):
    """Catches steps of a finished env (waiting for the others) counted or learned from."""
    # Every printed episode is one env's whole episode: the step counts add up exactly.
    reinforce.main(reinforce.Args(seed=2, total_timesteps=2000, num_episodes=4))
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "episodic_return=" in line]
    returns = [float(line.split("episodic_return=")[1]) for line in lines]
    steps = [int(line.split(",")[0].split("=")[1]) for line in lines]
    # CartPole pays 1 per step: the returns are the episode lengths and sum to the step count.
    assert sum(returns) == steps[-1]
    assert len(lines) % 4 == 0


def test_same_seed_gives_identical_episodes(capsys):
    """Catches a source of randomness that --seed does not set (or a seed that is ignored)."""

    def episode_lines(seed):
        reinforce.main(reinforce.Args(seed=seed, total_timesteps=3000))
        lines = capsys.readouterr().out.splitlines()
        return [line for line in lines if "episodic_return=" in line]

    first, second, other = episode_lines(3), episode_lines(3), episode_lines(4)
    assert len(first) > 20 and first == second
    assert first != other


def test_track_writes_an_offline_wandb_run(offline_wandb):
    """Catches a metric missing from wandb under --track."""
    reinforce.main(reinforce.Args(track=True, total_timesteps=1000))
    data = offline_wandb()
    for key in [
        b"charts/episodic_return",
        b"losses/policy_loss",
        b"losses/value_loss",
        b"charts/SPS",
    ]:
        assert key in data


# --- bad input specific to reinforce.py (the shared ones are in test_shared.py) ---
class OneStepToy(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (2,))
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, True, False, {}


gym.register("rlref/EndlessToy-v0", entry_point=OneStepToy)  # registered without a time limit


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(env_id="rlref/EndlessToy-v0"), "has no time limit"),
        (dict(num_episodes=0), "--num-episodes must be positive"),
        (dict(value_steps=-1), "--value-steps must be positive"),
        (dict(gamma=1.5), "--gamma must be in"),
    ],
)
def test_bad_input_gets_a_clear_error(kwargs, message, capsys):
    """Catches settings that crash deep in the loop instead of a one-line error."""
    with pytest.raises(reinforce.UsageError, match=message):
        reinforce.main(reinforce.Args(**kwargs))
    assert "episodic_return" not in capsys.readouterr().out  # nothing was trained


# --- the bootstrap at a time limit: only reward-to-go fitted by V uses V(s_T) ---
gym.register(
    "rlref/ShortCartPole-v0",
    entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv",
    max_episode_steps=8,
)


@pytest.mark.parametrize(
    "weight, baseline, bootstraps",
    [
        ("reward-to-go", "value", True),
        ("total", "value", False),
        ("reward-to-go", "mean", False),
        ("reward-to-go", "none", False),
    ],
)
def test_only_reward_to_go_with_a_learned_v_bootstraps_a_truncation(
    weight, baseline, bootstraps, monkeypatch
):
    """Catches V(s_T) added to a truncated episode's weights where V estimates no reward-to-go
    (with `--weight total`, V regresses on whole-episode returns) or where there is no V at all.
    CartPole cut at 8 steps: almost every episode is truncated."""
    last_values = []
    weight_fns = {"reward-to-go": reinforce.reward_to_go, "total": reinforce.total_return}
    real = weight_fns[weight]

    def spy(rewards, gamma, last_value=0.0):
        last_values.append(float(last_value))
        return real(rewards, gamma, last_value)

    monkeypatch.setattr(
        reinforce, "reward_to_go" if weight == "reward-to-go" else "total_return", spy
    )
    args = reinforce.Args(env_id="rlref/ShortCartPole-v0", total_timesteps=400)
    reinforce.main(reinforce.Args(**{**vars(args), "weight": weight, "baseline": baseline}))
    assert len(last_values) >= 40
    assert (np.count_nonzero(last_values) > len(last_values) // 2) == bootstraps
