"""The training loops on environments whose right answer is known.

Each classic script's main() runs a few steps on StepCounter, an env whose observation is the
step count, so what the loop hands to its math can be checked exactly: V of which state reaches
GAE, which s' reaches the replay buffer, which weights reach the policy-gradient loss, what the
saved policy is evaluated on. The loop's functions are watched by monkeypatching the script's own
ones (gae, td_target, ReplayBuffer.add, ...); the scripts have no test hooks.
"""

import gymnasium as gym
import numpy as np
import pytest
import torch

import actor_critic
import dqn
import ppo
import reinforce

T = 4  # episode length in every StepCounter env
GAMMA = 0.9


class StepCounter(gym.Env):
    """Observation [k, 1] at step k of an episode (times `scale`; or [k, u], u random, if `noisy`);
    reward 1 every step (or, with `action_reward`, 1 for action 1 and 0 for action 0; with
    `box_target`, -|a - box_target|^2 for a Box action a in [-box_bound, box_bound]^d);
    otherwise the action changes nothing. With `terminate_at`, the episode terminates at that
    step (with `end_prob`, at each step with that probability); else only the time limit ends it.
    Every action it is sent is kept in `actions`."""

    actions = []

    def __init__(
        self,
        terminate_at=None,
        scale=1.0,
        box_actions=0,
        noisy=False,
        action_reward=False,
        box_target=None,
        box_bound=1.0,
        end_prob=0.0,
    ):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        if box_actions:  # Box actions of this many dims
            self.action_space = gym.spaces.Box(-box_bound, box_bound, (box_actions,), np.float32)
        else:
            self.action_space = gym.spaces.Discrete(2)
        self.terminate_at = terminate_at
        self.scale = scale
        self.noisy = noisy
        self.action_reward = action_reward
        self.box_target = box_target
        self.end_prob = end_prob

    def obs(self):
        if self.noisy:  # [k, u], u ~ U(0, 1): no two observations alike
            return np.array([self.k, self.np_random.random()], np.float32)
        return np.array([self.k, 1.0], np.float32) * self.scale

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.k = 0
        return self.obs(), {}

    def step(self, action):
        StepCounter.actions.append(np.array(action))
        self.k += 1
        reward = float(action == 1) if self.action_reward else 1.0
        if self.box_target is not None:
            reward = -float(np.sum((np.asarray(action) - self.box_target) ** 2))
        terminated = self.k == self.terminate_at or self.np_random.random() < self.end_prob
        return self.obs(), reward, terminated, False, {}


TRUNCATED = "rlref/StepCounterTruncated-v0"  # the time limit ends every episode after T steps
TERMINATED = "rlref/StepCounterTerminated-v0"  # the env ends every episode after T steps
SCALED_BOX = "rlref/StepCounterScaledBox-v0"  # Box actions, observations 100 * [k, 1]
NOISY = "rlref/StepCounterNoisy-v0"  # observations [k, u], u uniform in (0, 1)
ACTION_REWARD = "rlref/StepCounterActionReward-v0"  # reward 1 for action 1, 0 for action 0
gym.register(TRUNCATED, entry_point=StepCounter, max_episode_steps=T)
gym.register(TERMINATED, entry_point=StepCounter, max_episode_steps=100, kwargs={"terminate_at": T})
gym.register(
    ACTION_REWARD, entry_point=StepCounter, max_episode_steps=T, kwargs={"action_reward": True}
)
gym.register(NOISY, entry_point=StepCounter, max_episode_steps=T, kwargs={"noisy": True})
gym.register(
    SCALED_BOX,
    entry_point=StepCounter,
    max_episode_steps=T,
    kwargs={"scale": 100.0, "box_actions": 1},
)
BOX_TARGET = (
    "rlref/StepCounterBoxTarget-v0"  # 2-D actions in [-10, 10], reward -|a - (0.5, -0.3)|^2
)
gym.register(
    BOX_TARGET,
    entry_point=StepCounter,
    max_episode_steps=T,
    kwargs={"box_actions": 2, "box_target": np.array([0.5, -0.3]), "box_bound": 10.0},
)


def states(scale=1.0) -> torch.Tensor:
    """The observations of steps 0..T: [k, 1], k = 0..T (s_T is the last one of an episode)."""
    return torch.tensor([[k, 1.0] for k in range(T + 1)]) * scale


def record_instances(monkeypatch, module, class_name: str) -> list:
    """Every object main() builds of module.class_name, in the order built."""
    made = []
    cls = getattr(module, class_name)

    class Recorded(cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(module, class_name, Recorded)
    return made


def spy(monkeypatch, owner, name: str) -> list:
    """Replace owner.name by a wrapper that records each call's arguments (copied) and returns
    what the original returns."""
    calls = []
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        calls.append([a.copy() if isinstance(a, np.ndarray) else a for a in args] + [kwargs])
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


# --- every policy script: the policy learns the rewarded action ---
@pytest.mark.parametrize("script", [reinforce, actor_critic, ppo], ids=lambda m: m.__name__)
def test_the_policy_learns_to_take_the_rewarded_action(script, monkeypatch):
    """Catches a policy gradient that points the wrong way (an inverted PPO ratio, a flipped
    loss, advantages of the wrong sign): where action 1 pays 1 and action 0 pays 0, a short run
    ends with pi(1|s) > 0.9 in every state (it starts at 0.5)."""
    agents = record_instances(monkeypatch, script, "Agent")
    args = dict(env_id=ACTION_REWARD, total_timesteps=2000, learning_rate=0.01, anneal_lr=False)
    if script is reinforce:
        args["num_episodes"] = 8
    else:
        args.update(num_envs=4, num_steps=8)
    script.main(script.Args(**args))
    with torch.no_grad():
        pi = agents[0].dist(states()[:T]).probs[:, 1]
    assert (pi > 0.9).all(), pi


# --- every policy script, Box actions: the Gaussian from its sample to the env and the loss ---
BOX_RUN = {
    reinforce: dict(total_timesteps=2000, learning_rate=0.03, num_episodes=8),
    actor_critic: dict(total_timesteps=3000, learning_rate=0.01, num_envs=4, num_steps=8),
    ppo: dict(total_timesteps=1000, learning_rate=0.01, num_envs=4, num_steps=8),
}


@pytest.mark.parametrize("script", [reinforce, actor_critic, ppo], ids=lambda m: m.__name__)
def test_a_gaussian_policy_learns_the_rewarded_action_in_each_dim(script, monkeypatch):
    """Catches a Box policy gradient that points the wrong way or mixes up the action's dims
    (actions stored, scored or sent in another order or shape, a log_prob not summed over the
    dims, a normalization that scrambles the states): where the reward is -|a - (0.5, -0.3)|^2,
    a short run moves the Gaussian's mean, averaged over the states, to within 0.2 of (0.5, -0.3)
    in each dim (it starts at 0), and narrows it (std from 1 to below 0.6)."""
    agents = record_instances(monkeypatch, script, "Agent")
    normalizers = record_instances(monkeypatch, script, "Normalizer")
    script.main(script.Args(env_id=BOX_TARGET, anneal_lr=False, **BOX_RUN[script]))
    with torch.no_grad():
        obs = torch.as_tensor(normalizers[0].obs(states()[:T].numpy()))  # as the agent sees them
        mean = agents[0].actor(obs).mean(0).numpy()
        std = agents[0].actor_logstd.exp().numpy()
    assert mean == pytest.approx([0.5, -0.3], abs=0.2), mean
    assert (std < 0.6).all(), std


@pytest.mark.parametrize("script", [reinforce, actor_critic, ppo], ids=lambda m: m.__name__)
def test_box_actions_reach_the_env_clipped_and_the_loss_as_sampled(script, monkeypatch):
    """Catches the clipped action stored for the update (its log-prob is then not the sample's),
    the unclipped one sent to the env, and actions out of step with their states: the env gets
    clip(a, -1, 1) of each sampled a, in order, and the update scores exactly the sampled actions,
    some of them outside the bounds."""
    sampled, scored = [], []
    real_sample = torch.distributions.Independent.sample
    real_log_prob = torch.distributions.Independent.log_prob

    def sample(self, sample_shape=torch.Size()):
        sampled.append(real_sample(self, sample_shape))
        return sampled[-1]

    def log_prob(self, value):
        if torch.is_grad_enabled():  # the update's, not the old log-probs of PPO
            scored.append(value.detach().clone())
        return real_log_prob(self, value)

    monkeypatch.setattr(torch.distributions.Independent, "sample", sample)
    monkeypatch.setattr(torch.distributions.Independent, "log_prob", log_prob)
    StepCounter.actions.clear()
    args = dict(env_id=SCALED_BOX, total_timesteps=16)
    if script is reinforce:
        args["num_episodes"] = 2
    else:
        args.update(num_envs=2, num_steps=4)
    script.main(script.Args(**args))
    sampled = torch.cat(sampled).flatten()
    assert np.stack(StepCounter.actions).flatten() == pytest.approx(sampled.clamp(-1, 1).numpy())
    assert (sampled.abs() > 1).any()  # with std 1, some samples fall outside [-1, 1]
    epochs = 4 if script is ppo else 1
    torch.testing.assert_close(
        torch.cat(scored).flatten().sort().values, sampled.repeat(epochs).sort().values
    )


# --- actor_critic.py, ppo.py: what reaches GAE ---
def short_rollouts(script, env_id: str, **kwargs):
    """Three rollouts of 6 steps of 2 envs: episodes end at rollout steps 3, 7, 11, 15."""
    num_steps = 6
    args = dict(env_id=env_id, num_envs=2, num_steps=num_steps, total_timesteps=36, gamma=GAMMA)
    return script.Args(**{**args, **kwargs}), num_steps


@pytest.mark.parametrize("env_id", [TRUNCATED, TERMINATED])
@pytest.mark.parametrize("script", [actor_critic, ppo], ids=lambda m: m.__name__)
def test_gae_gets_v_of_the_true_next_state_and_zero_only_after_a_termination(
    script, env_id, monkeypatch
):
    """Catches a bootstrap from the next episode's first obs (`next_obs = raw_obs`), the
    bootstrap masked by dones instead of terminated, no bootstrap (`next_values * 0`), V(s_T)
    kept after a termination, and rewards, values or dones out of step."""
    agents = record_instances(monkeypatch, script, "Agent")
    seen = []
    real_gae = script.gae

    def watched_gae(rewards, values, next_values, dones, gamma, lam):
        with torch.no_grad():  # V(s_k) for k = 0..T by the agent as it is now
            v = agents[0].value(states()).numpy()
        seen.append((rewards.copy(), values.copy(), next_values.copy(), dones.copy(), v))
        return real_gae(rewards, values, next_values, dones, gamma, lam)

    monkeypatch.setattr(script, "gae", watched_gae)
    args, num_steps = short_rollouts(script, env_id)
    script.main(args)
    assert len(seen) == 3
    for i, (rewards, values, next_values, dones, v) in enumerate(seen):
        for t in range(num_steps):
            k = (i * num_steps + t) % T  # the step of the episode; both envs in step
            ends = k == T - 1
            v_next = 0.0 if ends and env_id == TERMINATED else v[k + 1]  # v[T]: V(s_T)
            assert rewards[t].tolist() == [1.0, 1.0]
            assert dones[t].tolist() == [float(ends)] * 2
            assert values[t] == pytest.approx([v[k]] * 2, abs=1e-5)
            assert next_values[t] == pytest.approx([v_next] * 2, abs=1e-5), (i, t, k)


@pytest.mark.parametrize("script", [actor_critic, ppo], ids=lambda m: m.__name__)
def test_the_critic_learns_v_of_an_endless_constant_reward_despite_the_time_limit(
    script, monkeypatch
):
    """Catches a time limit treated as a termination, by what the critic learns: reward 1 every
    step and gamma 0.5 give V = 1/(1 - gamma) = 2 in every state when a truncation bootstraps;
    treated as the end, V(s_3) would be 1 and V(s_0) 1.875."""
    made = record_instances(monkeypatch, script, "Agent")
    args = script.Args(
        env_id=TRUNCATED,
        num_envs=4,
        num_steps=8,
        total_timesteps=6000,
        gamma=0.5,
        learning_rate=3e-3,
        anneal_lr=False,
    )
    script.main(args)
    with torch.no_grad():
        v = made[0].value(states()[:T]).numpy()
    assert v == pytest.approx([2.0] * T, abs=0.15)


@pytest.mark.parametrize("script", [actor_critic, ppo], ids=lambda m: m.__name__)
def test_the_entropy_bonus_raises_the_policys_entropy(script, monkeypatch):
    """Catches the entropy bonus with the wrong sign (a penalty): the same seeded run with an
    entropy coefficient of 1 ends with a policy of higher mean entropy over the states than with
    0."""
    entropies = []
    for ent_coef in [0.0, 1.0]:
        agents = record_instances(monkeypatch, script, "Agent")
        args, _ = short_rollouts(script, TERMINATED, ent_coef=ent_coef, learning_rate=0.01)
        script.main(args)
        with torch.no_grad():
            entropies.append(agents[0].dist(states()[:T]).entropy())
        monkeypatch.undo()
    without, with_bonus = entropies
    assert with_bonus.mean() > without.mean() + 0.02, (without, with_bonus)


@pytest.mark.parametrize("script", [actor_critic, ppo], ids=lambda m: m.__name__)
def test_norm_adv_scales_the_advantages_that_reach_the_policy_loss(script, monkeypatch):
    """Catches --norm-adv ignored (or applied when off): with it, each batch the policy loss sees
    has mean 0 and std 1; without it, the loss sees GAE's advantages unchanged."""
    loss_fn = "clip_policy_loss" if script is ppo else "policy_gradient_loss"
    for norm_adv in [True, False]:
        gae_calls = spy(monkeypatch, script, "gae")
        loss_calls = spy(monkeypatch, script, loss_fn)
        args, _ = short_rollouts(script, TERMINATED, norm_adv=norm_adv, total_timesteps=12)
        script.main(args)
        advantages = loss_calls[0][1].detach().numpy()  # (ratio or log pi, advantages, ...)
        if norm_adv:
            assert advantages.mean() == pytest.approx(0.0, abs=1e-5)
            assert advantages.std(ddof=1) == pytest.approx(1.0, abs=1e-4)
        else:
            from_gae = real_gae_output(script, gae_calls[0])
            assert sorted(advantages) == pytest.approx(sorted(from_gae.flatten()), abs=1e-5)
        monkeypatch.undo()


def real_gae_output(script, call) -> np.ndarray:
    """What gae returned for recorded arguments."""
    rewards, values, next_values, dones, gamma, lam, _ = call
    return script.gae(rewards, values, next_values, dones, gamma, lam)


# --- ppo.py: minibatches, --target-kl, --no-clip-vloss ---
def test_each_epoch_draws_new_minibatches_from_the_whole_rollout(monkeypatch):
    """Catches minibatches cut in the same order every epoch (or not covering the rollout): the
    observations each minibatch step sees, on an env whose observations are all different."""
    steps = []
    real_dist = ppo.Agent.dist

    def watched_dist(self, obs):
        if torch.is_grad_enabled():  # a minibatch step, not acting or the old log-probs
            steps.append(obs[:, 1].tolist())
        return real_dist(self, obs)

    monkeypatch.setattr(ppo.Agent, "dist", watched_dist)
    args, _ = short_rollouts(
        ppo, NOISY, num_minibatches=2, update_epochs=3, total_timesteps=12, norm_adv=False
    )
    ppo.main(args)
    epochs = [steps[i] + steps[i + 1] for i in range(0, 6, 2)]  # 3 epochs of 2 minibatches
    assert len(steps) == 6 and all(sorted(e) == sorted(epochs[0]) for e in epochs)
    assert len(set(epochs[0])) == 12  # every row of the rollout, once
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2]


def test_target_kl_stops_the_epochs_of_an_update_early(monkeypatch):
    """Catches --target-kl that never stops an update: with a tiny target, each update stops
    after its first epoch whose last minibatch has moved pi at all (the second; the first
    epoch's ratio is 1 on its first minibatch only)."""
    counts = {}
    for target_kl in [None, 1e-12]:
        calls = spy(monkeypatch, ppo, "clip_policy_loss")
        args, _ = short_rollouts(
            ppo, TERMINATED, num_minibatches=2, update_epochs=4, target_kl=target_kl
        )
        ppo.main(args)
        counts[target_kl] = len(calls)
        monkeypatch.undo()
    assert counts[None] == 3 * 4 * 2  # 3 updates, 4 epochs, 2 minibatches
    assert counts[1e-12] == 3 * 1 * 2


@pytest.mark.parametrize("clip_vloss", [True, False])
def test_the_value_loss_is_clipped_only_under_clip_vloss(clip_vloss, monkeypatch):
    """Catches --no-clip-vloss ignored (or --clip-vloss): every minibatch step clips the value
    loss around V_old, the rollout's own values, exactly when asked."""
    gae_calls = spy(monkeypatch, ppo, "gae")
    calls = spy(monkeypatch, ppo, "clipped_value_loss")
    args, _ = short_rollouts(ppo, TERMINATED, clip_vloss=clip_vloss, total_timesteps=12)
    ppo.main(args)
    assert len(calls) == (4 if clip_vloss else 0)  # 4 epochs of 1 minibatch
    for _, old_values, _, clip_coef, _ in calls:
        assert clip_coef == 0.2
        assert sorted(old_values.tolist()) == pytest.approx(sorted(gae_calls[0][1].flatten()))
    new, old, target = torch.tensor([2.0]), torch.tensor([0.0]), torch.tensor([2.0])
    # unclipped: (2 - 2)^2 = 0; clipped: V_old + clip(2 - 0, 0.2) = 0.2, (0.2 - 2)^2 = 3.24
    assert ppo.clipped_value_loss(new, old, target, 0.2).item() == pytest.approx(0.5 * 3.24)


# --- reinforce.py: the weights that reach the loss ---
RANDOM_LENGTH_BOX = "rlref/StepCounterRandomLengthBox-v0"  # Box; each step ends it with p=0.3
gym.register(
    RANDOM_LENGTH_BOX,
    entry_point=StepCounter,
    max_episode_steps=20,
    kwargs={"box_actions": 1, "end_prob": 0.3},
)


def test_reinforce_scales_each_batch_by_returns_that_start_at_zero(monkeypatch):
    """Catches a discounted return (the reward scale's statistic) carried over from one batch to
    the next: an env that finished its episode keeps stepping while it waits for the others, and
    that unfinished episode must not count in the next batch's returns."""
    seen = []  # the discounted return of each env at the first step of each batch
    left = []  # and at the last step before each reset
    fresh = []
    real_reset = gym.wrappers.vector.RecordEpisodeStatistics.reset
    real_step = reinforce.Normalizer.step

    def reset(self, **kwargs):
        fresh.append(True)
        return real_reset(self, **kwargs)

    def step(self, raw_obs, raw_next_obs, reward, done):
        if fresh and fresh.pop():
            seen.append(self.discounted_return.copy())
        result = real_step(self, raw_obs, raw_next_obs, reward, done)
        left.append(self.discounted_return.copy())
        return result

    monkeypatch.setattr(gym.wrappers.vector.RecordEpisodeStatistics, "reset", reset)
    monkeypatch.setattr(reinforce.Normalizer, "step", step)
    reinforce.main(reinforce.Args(env_id=RANDOM_LENGTH_BOX, num_episodes=4, total_timesteps=200))
    assert len(seen) > 5 and all((returns == 0).all() for returns in seen)
    assert any(returns.any() for returns in left)  # the waiting envs were mid-episode


@pytest.mark.parametrize("env_id", [TRUNCATED, TERMINATED])
def test_reinforce_bootstraps_v_of_the_final_state_only_at_a_time_limit(env_id, monkeypatch):
    """Catches no bootstrap at a time limit, a bootstrap after a termination, and s_T taken from
    the next episode's first obs: with reward-to-go and a learned V, a truncated episode's
    G_{T-1} = 1 + gamma * V(s_T), a terminated one's G_{T-1} = 1."""
    agents = record_instances(monkeypatch, reinforce, "Agent")
    seen = []
    real = reinforce.reward_to_go

    def watched(rewards, gamma, last_value=0.0):
        with torch.no_grad():
            v_final = agents[0].value(states()[T]).item()  # V(s_T), s_T = [T, 1]
        seen.append((rewards.copy(), last_value, v_final))
        return real(rewards, gamma, last_value)

    monkeypatch.setattr(reinforce, "reward_to_go", watched)
    reinforce.main(
        reinforce.Args(
            env_id=env_id,
            num_episodes=2,
            total_timesteps=16,
            gamma=GAMMA,
            weight="reward-to-go",
            baseline="value",
        )
    )
    assert len(seen) == 4  # 2 batches of 2 episodes
    for rewards, last_value, v_final in seen:
        assert rewards.tolist() == [1.0] * T
        expected = v_final if env_id == TRUNCATED else 0.0
        assert last_value == pytest.approx(expected, abs=1e-5)


RTG = [1 + GAMMA + GAMMA**2 + GAMMA**3, 1 + GAMMA + GAMMA**2, 1 + GAMMA, 1.0]  # reward-to-go


@pytest.mark.parametrize(
    "weight, baseline",
    [("total", "none"), ("reward-to-go", "none"), ("reward-to-go", "mean"), ("total", "value")],
)
def test_reinforce_weights_and_baselines_reach_the_loss_as_the_formulas_say(
    weight, baseline, monkeypatch
):
    """Catches --weight or --baseline ignored or mixed up: on 4-step episodes of reward 1 (ended
    by the env, so nothing bootstraps) the loss must get, per step, G_0 for `total`, G_t for
    `reward-to-go`, less the batch mean for `mean`, less V(s_t) for `value`; V regresses on G."""
    agents = record_instances(monkeypatch, reinforce, "Agent")
    seen = []
    real = reinforce.policy_gradient_loss

    def watched(logprobs, weights):
        with torch.no_grad():
            v = agents[0].value(states()[:T]).numpy()
        seen.append((weights.detach().numpy().copy(), v))
        return real(logprobs, weights)

    monkeypatch.setattr(reinforce, "policy_gradient_loss", watched)
    value_calls = spy(monkeypatch, reinforce, "value_loss")
    args = reinforce.Args(
        env_id=TERMINATED,
        num_episodes=2,
        total_timesteps=8,
        gamma=GAMMA,
        weight=weight,
        baseline=baseline,
    )
    reinforce.main(args)
    (weights, v), *_ = seen
    g = np.array([RTG[0]] * T if weight == "total" else RTG)
    per_episode = {"none": g, "mean": g - g.mean(), "value": g - v}[baseline]
    assert weights == pytest.approx(np.concatenate([per_episode, per_episode]), abs=1e-5)
    if baseline == "value":  # V(s_t) regresses on the weight itself, before any baseline
        targets = value_calls[0][1].numpy()
        assert targets == pytest.approx(np.concatenate([g, g]), abs=1e-5)
    else:
        assert value_calls == []


# --- dqn.py: what reaches the replay buffer and the Bellman target ---
def dqn_args(**kwargs):
    args = dict(
        num_envs=2,
        total_timesteps=48,
        learning_starts=16,
        batch_size=8,
        train_frequency=2,
        target_network_frequency=2,
        gamma=GAMMA,
    )
    return dqn.Args(**{**args, **kwargs})


@pytest.mark.parametrize("env_id", [TRUNCATED, TERMINATED])
def test_the_replay_buffer_gets_the_true_next_obs_and_terminated_only_at_a_termination(
    env_id, monkeypatch
):
    """Catches the reset obs stored as s' at an episode end, and done stored as terminated (no
    bootstrap after a time limit): every stored s' is the obs one step after s, and terminated
    is 1 only where the env terminated."""
    calls = spy(monkeypatch, dqn.ReplayBuffer, "add")
    dqn.main(dqn_args(env_id=env_id))
    assert len(calls) == 24
    for _, obs, next_obs, _actions, rewards, terminated, _ in calls:
        assert next_obs[:, 0].tolist() == (obs[:, 0] + 1).tolist()
        ends = obs[:, 0] == T - 1
        assert np.asarray(terminated).tolist() == (ends & (env_id == TERMINATED)).tolist()
        assert np.asarray(rewards).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("double_dqn", [True, False])
def test_the_bellman_target_uses_the_target_network_and_double_only_when_asked(
    double_dqn, monkeypatch
):
    """Catches --double-dqn or --no-double-dqn ignored, Q(s', .) taken from the online network
    instead of the target network (they differ after the first gradient step), and a Polyak
    update with tau and 1 - tau swapped."""
    networks = record_instances(monkeypatch, dqn, "QNetwork")
    samples = []
    real_sample = dqn.ReplayBuffer.sample

    def watched_sample(self, batch_size, device):
        samples.append(real_sample(self, batch_size, device))
        return samples[-1]

    targets = []
    snapshots = []  # (theta, theta_target) at each gradient step, before it
    real_target = dqn.td_target

    def watched_target(rewards, terminated, next_q_target, gamma, next_q_online=None):
        q_network, target_network = networks[0], networks[1]
        snapshots.append([torch.nn.utils.parameters_to_vector(n.parameters()) for n in networks])
        next_obs = samples[-1][3]
        with torch.no_grad():
            assert torch.allclose(next_q_target, target_network(next_obs))
            if double_dqn:
                assert torch.allclose(next_q_online, q_network(next_obs))
            targets.append(not torch.allclose(q_network(next_obs), target_network(next_obs)))
        assert (next_q_online is not None) == double_dqn
        return real_target(rewards, terminated, next_q_target, gamma, next_q_online)

    monkeypatch.setattr(dqn.ReplayBuffer, "sample", watched_sample)
    monkeypatch.setattr(dqn, "td_target", watched_target)
    dqn.main(dqn_args(env_id=TRUNCATED, double_dqn=double_dqn, tau=0.25))
    assert len(targets) == 17 and any(targets)  # the two networks differed: the check could fail
    # One gradient step and one target update per env step, in that order, so the target a step
    # sees is theta_target <- theta_target + tau * (theta - theta_target), theta the step's own.
    for (_, target_before), (theta, target_after) in zip(
        snapshots[:-1], snapshots[1:], strict=True
    ):
        expected = target_before + 0.25 * (theta - target_before)
        assert torch.allclose(target_after, expected, atol=1e-6)


def test_the_q_values_learned_bootstrap_through_a_time_limit(monkeypatch):
    """Catches a time limit treated as a termination, and Q(s, a) fitted for another action than
    the one taken, by what Q learns: action 1 pays 1, action 0 pays 0, gamma 0.5, so
    V = 1/(1 - gamma) = 2, Q(s, 1) = 1 + gamma V = 2 and Q(s, 0) = 0 + gamma V = 1 in every
    state; cut at the time limit, Q(s_3, .) would be (0, 1)."""
    made = record_instances(monkeypatch, dqn, "QNetwork")
    args = dqn_args(
        env_id=ACTION_REWARD,
        total_timesteps=3000,
        learning_starts=64,
        batch_size=32,
        gamma=0.5,
        learning_rate=3e-3,
    )
    dqn.main(args)
    with torch.no_grad():
        q = made[0](states()[:T]).numpy()
    # a little above at s_3, where the max over two noisy Q estimates overestimates most
    assert q == pytest.approx(np.tile([1.0, 2.0], (T, 1)), abs=0.3)


# --- evaluate: the saved normalization and the mode ---
@pytest.mark.parametrize("script", [reinforce, actor_critic, ppo], ids=lambda m: m.__name__)
def test_evaluate_acts_on_obs_normalized_by_the_saved_statistics_with_the_mode(
    script, tmp_path, monkeypatch
):
    """Catches evaluate() without the saved normalization (observations 100x what the policy
    learned on) and a sampled action instead of the mode: each obs the policy sees is
    clip((o - mean) / sqrt(var + 1e-8), -10, 10) with the checkpoint's mean and var, and the env
    gets the Gaussian's mean, clipped to the action space."""
    monkeypatch.chdir(tmp_path)
    args = dict(env_id=SCALED_BOX, total_timesteps=64, save_model=True, eval_episodes=1)
    if script is reinforce:
        args["num_episodes"] = 4
    else:
        args.update(num_envs=2, num_steps=8)
    path = script.main(script.Args(**args))["model_path"]
    checkpoint = torch.load(path, weights_only=True)
    mean, var = (
        checkpoint["normalizer"]["obs_rms"]["mean"],
        checkpoint["normalizer"]["obs_rms"]["var"],
    )
    assert var[0] > 1.0  # the first coordinate, 100 k, was seen at several k
    seen = []
    real_dist = script.Agent.dist

    def watched_dist(self, obs):
        dist = real_dist(self, obs)
        seen.append((obs.clone(), dist.mean.clone()))
        return dist

    monkeypatch.setattr(script.Agent, "dist", watched_dist)
    StepCounter.actions.clear()
    script.evaluate(path, eval_episodes=1, seed=0)
    raw = states(scale=100.0)[:T].double()
    expected = ((raw - mean) / torch.sqrt(var + 1e-8)).clamp(-10.0, 10.0).float()
    assert torch.stack([obs[0] for obs, _ in seen]) == pytest.approx(expected, abs=1e-4)
    modes = np.stack([np.clip(m[0].numpy(), -1.0, 1.0) for _, m in seen])
    assert np.stack(StepCounter.actions) == pytest.approx(modes.reshape(T, -1), abs=1e-6)
