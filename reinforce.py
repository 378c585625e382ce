"""REINFORCE: the Monte-Carlo policy gradient (Williams 1992), discrete and continuous actions.

The first chapter. Play whole episodes with the current policy pi(a|s), then take one
gradient step on  -mean_t[ weight_t * log pi(a_t|s_t) ], which makes each action more likely
in proportion to its weight. `--weight total` weights every action by the whole episode's
return (the textbook form); `--weight reward-to-go` only by the rewards that came after it;
`--baseline value` (learned V(s_t)) or `--baseline mean` subtracts a baseline to cut the variance.

    python reinforce.py --env-id CartPole-v1
    python reinforce.py --env-id CartPole-v1 --weight total --baseline none
"""

import importlib.util
import json
import os
import random
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Literal, Optional

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import tyro
from gymnasium.vector import AutoresetMode


@dataclass
class Args:
    exp_name: str = "reinforce"
    """name of this experiment (part of the run name)"""
    seed: int = 1
    """seed of the experiment (torch, numpy, random and the environments)"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True`"""
    cuda: bool = False
    """if toggled, run the networks on the GPU (tiny MLPs are usually faster on the CPU)"""
    track: bool = False
    """if toggled, log the run to Weights & Biases (works with WANDB_MODE=offline)"""
    wandb_project_name: str = "rlref"
    """the wandb project name"""
    wandb_entity: Optional[str] = None
    """the wandb entity (team); None uses your default entity"""
    capture_video: bool = False
    """if toggled, record videos of env 0 to `videos/` (needs moviepy)"""
    save_model: bool = False
    """if toggled, save weights and args to `runs/{run_name}/reinforce.pt`"""
    eval_checkpoint: Optional[str] = None
    """path of a saved model: evaluate it for `--eval-episodes` episodes instead of training"""
    eval_episodes: int = 10
    """number of episodes for the evaluation of a saved model"""

    # Algorithm specific arguments
    env_id: str = "CartPole-v1"
    """the id of the environment"""
    total_timesteps: int = 200_000
    """total environment steps of the experiment (steps of the episodes learned from)"""
    learning_rate: float = 1e-2
    """the learning rate of the policy's Adam optimizer"""
    num_episodes: int = 8
    """the number of whole episodes per gradient step, played side by side in as many envs"""
    gamma: float = 0.99
    """the discount factor gamma of the returns"""
    weight: Literal["total", "reward-to-go"] = "reward-to-go"
    """what weights log pi(a_t|s_t): `total`, the episode's discounted return from its start; `reward-to-go`, the discounted return from step t on"""
    baseline: Literal["none", "value", "mean"] = "value"
    """what is subtracted from the weight: `none`; `value`, a learned V(s_t); `mean`, the batch mean of the weights"""
    value_learning_rate: float = 1e-2
    """`--baseline value`: the learning rate of the value network's Adam optimizer"""
    value_steps: int = 10
    """`--baseline value`: gradient steps of the value network on each batch"""


class UsageError(ValueError):
    """A setting the script cannot run with; raised before training, printed as one line."""


# --- environments: gymnasium 1.x vector env with SAME_STEP autoreset ---
# With SAME_STEP, a sub-env whose episode ends is reset inside the same step(): the returned
# obs already belongs to a new episode and the true last obs is in info["final_obs"].
# REINFORCE learns from whole episodes, so each env plays exactly one episode per batch;
# what an env does after its episode ended (while the others finish) is not used.
def make_env(env_id: str, idx: int, capture_video: bool, run_name: str):
    def thunk():
        if capture_video and idx == 0:
            env = gym.make(env_id, render_mode="rgb_array", disable_env_checker=True)
            env = gym.wrappers.RecordVideo(env, f"videos/{run_name}")
        else:
            env = gym.make(env_id, disable_env_checker=True)
        return env

    return thunk


def make_envs(env_id: str, num_envs: int, capture_video: bool = False, run_name: str = ""):
    # copy=False: step() returns its internal obs array; we copy it into storage at once
    return gym.vector.SyncVectorEnv(
        [make_env(env_id, i, capture_video, run_name) for i in range(num_envs)],
        autoreset_mode=AutoresetMode.SAME_STEP,
        copy=False,
    )


def check_args(args: Args):
    """Refuse settings that cannot work, each with one line that says what to do."""
    for name in ["total_timesteps", "num_episodes", "value_steps", "eval_episodes"]:
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if not 0.0 <= args.gamma <= 1.0:
        raise UsageError(f"--gamma must be in [0, 1], got {args.gamma}")
    if args.eval_checkpoint is not None and not os.path.isfile(args.eval_checkpoint):
        raise UsageError(f"--eval-checkpoint {args.eval_checkpoint}: no such file (train with --save-model first)")
    if args.env_id not in gym.registry:
        raise UsageError(f"unknown env id '{args.env_id}'; registered ids look like CartPole-v1, Acrobot-v1, Pendulum-v1")
    if gym.spec(args.env_id).max_episode_steps is None:
        raise UsageError(
            f"reinforce.py learns from whole episodes and {args.env_id} has no time limit; "
            "register it with max_episode_steps"
        )
    if args.capture_video and importlib.util.find_spec("moviepy") is None:
        raise UsageError("--capture-video needs moviepy: pip install moviepy")
    if args.cuda and not torch.cuda.is_available():
        raise UsageError("--cuda was given but torch sees no CUDA device; drop --cuda")


def check_spaces(env_id: str, observation_space: gym.Space, action_space: gym.Space):
    if not (isinstance(observation_space, gym.spaces.Box) and len(observation_space.shape) == 1):
        raise UsageError(
            f"reinforce.py's MLP needs a flat Box observation space; {env_id} has {observation_space} "
            "(wrap it in gymnasium.wrappers.FlattenObservation)"
        )
    if not isinstance(action_space, (gym.spaces.Discrete, gym.spaces.Box)) or (
        isinstance(action_space, gym.spaces.Box) and len(action_space.shape) != 1
    ):
        raise UsageError(f"reinforce.py handles Discrete and 1-D Box action spaces; {env_id} has {action_space}")


# --- networks: the policy, and the value network of `--baseline value` ---
def layer_init(layer: nn.Linear, std=np.sqrt(2), bias_const=0.0):
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias_const)
    return layer


def mlp(in_dim: int, out_dim: int, out_std: float) -> nn.Sequential:
    return nn.Sequential(
        layer_init(nn.Linear(in_dim, 64)),
        nn.Tanh(),
        layer_init(nn.Linear(64, 64)),
        nn.Tanh(),
        layer_init(nn.Linear(64, out_dim), std=out_std),
    )


class Agent(nn.Module):
    """The policy pi(a|s): Categorical for Discrete actions, diagonal Gaussian with a
    state-independent log-std for Box actions. The value network V(s) is only trained
    and used with `--baseline value`."""

    def __init__(self, obs_dim: int, action_space: gym.Space):
        super().__init__()
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        action_dim = int(action_space.n) if self.discrete else action_space.shape[0]
        self.actor = mlp(obs_dim, action_dim, out_std=0.01)  # logits, or the Gaussian mean
        if not self.discrete:
            self.actor_logstd = nn.Parameter(torch.zeros(action_dim))
        self.critic = mlp(obs_dim, 1, out_std=1.0)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log pi(a|s) of the given actions (the formulas torch.distributions uses; tests check them)."""
        out = self.actor(obs)
        if self.discrete:  # log p(a) = logit_a - log sum_b exp(logit_b)
            return out.log_softmax(-1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        # log N(a; mu, sigma^2) = -(a - mu)^2 / (2 sigma^2) - log sigma - log(2 pi)/2, summed over action dims
        logstd = self.actor_logstd.expand_as(out)
        return (-0.5 * ((actions - out) / logstd.exp()) ** 2 - logstd - 0.5 * np.log(2 * np.pi)).sum(-1)

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        """The most likely action, for evaluation."""
        out = self.actor(obs)
        return out.argmax(-1) if self.discrete else out


# --- acting while collecting episodes: a numpy copy of the policy ---
class NumpyPolicy:
    """Samples a ~ pi(.|s) with a numpy copy of the actor's weights, for collecting episodes.

    Episodes are played one env step at a time for a handful of envs. For batches that
    small torch spends most of its time dispatching ops; numpy runs the same forward pass
    and sample several times faster. The copy is taken before each batch of episodes,
    while the policy is fixed, and the update computes log pi(a|s) with torch from the
    stored actions.
    """

    def __init__(self, agent: Agent, rng: np.random.Generator):
        linears = [m for m in agent.actor if isinstance(m, nn.Linear)]
        self.layers = [(m.weight.detach().cpu().numpy().T.copy(), m.bias.detach().cpu().numpy().copy()) for m in linears]
        self.std = None if agent.discrete else agent.actor_logstd.detach().cpu().exp().numpy()
        self.rng = rng

    def sample(self, obs: np.ndarray) -> np.ndarray:
        x = obs
        for weight, bias in self.layers[:-1]:
            x = np.tanh(x @ weight + bias)
        weight, bias = self.layers[-1]
        out = x @ weight + bias  # logits, or the Gaussian mean
        if self.std is None:
            # Gumbel-max: argmax(logits + G), G ~ Gumbel(0,1), is a sample of softmax(logits)
            return (out + self.rng.gumbel(size=out.shape)).argmax(-1)
        return (out + self.std * self.rng.standard_normal(out.shape)).astype(np.float32)  # mean + std * N(0, I)


# --- the math: returns and the policy-gradient loss ---
def reward_to_go(rewards: np.ndarray, gamma: float, last_value: float = 0.0) -> np.ndarray:
    """G_t = r_t + gamma*r_{t+1} + ... + gamma^(T-1-t) r_{T-1} + gamma^(T-t) * last_value, for one episode.

    last_value is 0 when the episode terminated, and V(s_T) when it was truncated by a time
    limit: the episode would have gone on, and V(s_T) estimates the rewards it was cut off from.
    """
    returns = np.zeros(len(rewards))
    running = last_value
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running  # G_t = r_t + gamma * G_{t+1}
        returns[t] = running
    return returns


def total_return(rewards: np.ndarray, gamma: float, last_value: float = 0.0) -> np.ndarray:
    """The episode's discounted return from its start, G_0 = sum_t gamma^t r_t (+ gamma^T * last_value),
    as the weight of every one of its steps."""
    return np.full(len(rewards), reward_to_go(rewards, gamma, last_value)[0])


def policy_gradient_loss(logprobs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """L = -mean_t[ weight_t * log pi(a_t|s_t) ]; its gradient is the policy-gradient estimate (negated)."""
    return -(weights * logprobs).mean()


# --- save and evaluate ---
def save_checkpoint(path: str, agent: Agent, args: Args):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save({"model": agent.state_dict(), "args": asdict(args)}, path)


def evaluate(path: str, eval_episodes: int = 10, seed: int = 0, capture_video: bool = False) -> list:
    """Run `eval_episodes` episodes with the saved policy's most likely action; returns their returns."""
    checkpoint = torch.load(path, weights_only=False)
    saved = Args(**checkpoint["args"])
    env = make_env(saved.env_id, 0, capture_video, f"{saved.exp_name}-eval")()
    agent = Agent(env.observation_space.shape[0], env.action_space)
    agent.load_state_dict(checkpoint["model"])
    returns = []
    for episode in range(eval_episodes):
        obs, _ = env.reset(seed=seed + episode)
        done, episodic_return = False, 0.0
        while not done:
            with torch.no_grad():
                action = agent.mode(torch.as_tensor(obs, dtype=torch.float32)).numpy()
            if not agent.discrete:
                action = np.clip(action, env.action_space.low, env.action_space.high)
            obs, reward, terminated, truncated, _ = env.step(action)
            episodic_return += float(reward)
            done = terminated or truncated
        returns.append(episodic_return)
    env.close()
    return returns


def main(args: Args) -> dict:
    check_args(args)
    if args.eval_checkpoint is not None:
        returns = evaluate(args.eval_checkpoint, args.eval_episodes, args.seed, args.capture_video)
        for r in returns:
            print(f"eval_episodic_return={r}")
        return {"eval_returns": returns, "eval_mean_return": float(np.mean(returns))}

    run_name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    try:
        envs = make_envs(args.env_id, args.num_episodes, args.capture_video, run_name)
    except gym.error.DependencyNotInstalled as e:  # e.g. a MuJoCo env without gymnasium[mujoco]
        raise UsageError(f"{args.env_id} needs a package that is not installed: {e}") from None
    check_spaces(args.env_id, envs.single_observation_space, envs.single_action_space)
    continuous = isinstance(envs.single_action_space, gym.spaces.Box)

    if args.track:
        import wandb

        wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, config=asdict(args), name=run_name)
        wandb.define_metric("global_step")
        wandb.define_metric("*", step_metric="global_step")

    # --- seeding ---
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)  # the action sampling
    torch.backends.cudnn.deterministic = args.torch_deterministic
    # Networks this small run faster on one thread than with the thread pool's overhead.
    torch.set_num_threads(1)
    device = torch.device("cuda" if args.cuda else "cpu")

    obs_dim = envs.single_observation_space.shape[0]
    agent = Agent(obs_dim, envs.single_action_space).to(device)
    policy_params = list(agent.actor.parameters()) + ([] if agent.discrete else [agent.actor_logstd])
    policy_optimizer = torch.optim.Adam(policy_params, lr=args.learning_rate)
    value_optimizer = torch.optim.Adam(agent.critic.parameters(), lr=args.value_learning_rate)

    recent_returns = deque(maxlen=10)
    global_step, iteration = 0, 0
    start_time = time.time()
    envs.action_space.seed(args.seed)

    while global_step < args.total_timesteps:
        iteration += 1
        # --- collect: every env plays one whole episode with the current policy ---
        raw_obs, _ = envs.reset(seed=args.seed if iteration == 1 else None)
        policy = NumpyPolicy(agent, rng)
        playing = np.ones(args.num_episodes, bool)  # env i's episode has not ended yet
        lengths = np.zeros(args.num_episodes, np.int64)
        final_obs = np.zeros((args.num_episodes, obs_dim), np.float32)  # s_T of each episode
        truncated_at_end = np.zeros(args.num_episodes, bool)  # ended by the time limit, not by termination
        obs_steps, action_steps, reward_steps = [], [], []  # one (num_episodes, ...) array per step
        while playing.any():
            obs = raw_obs.astype(np.float32)
            action = policy.sample(obs)
            env_action = np.clip(action, envs.single_action_space.low, envs.single_action_space.high) if continuous else action
            raw_obs, reward, terminated, truncated, info = envs.step(env_action)
            obs_steps.append(obs)
            action_steps.append(action)
            reward_steps.append(reward.astype(np.float32))
            lengths += playing
            global_step += int(playing.sum())
            for i in np.flatnonzero(playing & (terminated | truncated)):
                playing[i] = False
                final_obs[i] = info["final_obs"][i]
                truncated_at_end[i] = truncated[i] and not terminated[i]
                episodic_return = float(sum(r[i] for r in reward_steps))
                recent_returns.append(episodic_return)
                print(f"global_step={global_step}, episodic_return={episodic_return:.2f}")
                if args.track:
                    wandb.log(
                        {"global_step": global_step, "charts/episodic_return": episodic_return, "charts/episodic_length": lengths[i]}
                    )

        # Episode i is rows 0..lengths[i]-1 of column i; flatten the episodes into one batch.
        obs_steps, action_steps, reward_steps = np.stack(obs_steps), np.stack(action_steps), np.stack(reward_steps)
        b_obs = torch.from_numpy(np.concatenate([obs_steps[:n, i] for i, n in enumerate(lengths)])).to(device)
        b_actions = torch.from_numpy(np.concatenate([action_steps[:n, i] for i, n in enumerate(lengths)])).to(device)
        with torch.no_grad():  # V(s_T): the bootstrap of a truncated episode (used by `--baseline value` only)
            last_values = agent.value(torch.from_numpy(final_obs).to(device)).cpu().numpy()

        # --- weights: total return or reward-to-go, bootstrapped on truncation ---
        # Without a learned V there is nothing to bootstrap with, and a truncated episode's
        # last steps look worse than they are; with one, V(s_T) stands in for the cut-off rest.
        episode_weights = []
        for i, n in enumerate(lengths):
            last_value = last_values[i] if args.baseline == "value" and truncated_at_end[i] else 0.0
            returns_fn = total_return if args.weight == "total" else reward_to_go
            episode_weights.append(returns_fn(reward_steps[:n, i], args.gamma, last_value))
        b_weights = torch.from_numpy(np.concatenate(episode_weights).astype(np.float32)).to(device)

        # --- baseline: subtract b(s_t); E[grad log pi(a|s) * b(s)] = 0, so the gradient stays unbiased ---
        if args.baseline == "value":
            with torch.no_grad():
                advantages = b_weights - agent.value(b_obs)
        elif args.baseline == "mean":
            advantages = b_weights - b_weights.mean()
        else:
            advantages = b_weights

        # --- update: one policy-gradient step on the batch of whole episodes ---
        pg_loss = policy_gradient_loss(agent.log_prob(b_obs, b_actions), advantages)
        policy_optimizer.zero_grad()
        pg_loss.backward()
        policy_optimizer.step()

        # --- fit the baseline: V(s_t) regresses on the weights it is subtracted from ---
        if args.baseline == "value":
            for _ in range(args.value_steps):
                v_loss = 0.5 * ((agent.value(b_obs) - b_weights) ** 2).mean()
                value_optimizer.zero_grad()
                v_loss.backward()
                value_optimizer.step()

        # --- logging ---
        sps = int(global_step / (time.time() - start_time))
        if iteration % 10 == 0 or global_step >= args.total_timesteps:
            mean_return = float(np.mean(recent_returns))
            print(f"global_step={global_step}, SPS={sps}, mean_return_last10={mean_return:.2f}")
        if args.track:
            metrics = {"global_step": global_step, "losses/policy_loss": pg_loss.item(), "charts/SPS": sps}
            if args.baseline == "value":
                metrics["losses/value_loss"] = v_loss.item()
            wandb.log(metrics)

    envs.close()
    result = {
        "env_id": args.env_id,
        "global_step": global_step,
        "mean_return_last10": float(np.mean(recent_returns)),
        "sps": int(global_step / (time.time() - start_time)),
        "wall_seconds": round(time.time() - start_time, 2),
    }
    if args.save_model:
        model_path = f"runs/{run_name}/{args.exp_name}.pt"
        save_checkpoint(model_path, agent.cpu(), args)
        returns = evaluate(model_path, args.eval_episodes, args.seed)
        result.update(model_path=model_path, eval_mean_return=float(np.mean(returns)))
    if args.track:
        wandb.finish()
    return result


if __name__ == "__main__":
    cli_args = tyro.cli(Args)
    try:
        print(json.dumps(main(cli_args)))
    except UsageError as e:
        raise SystemExit(f"reinforce.py: error: {e}")
