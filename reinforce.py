"""REINFORCE: the Monte-Carlo policy gradient (Williams 1992), discrete and continuous actions.

The first chapter. Play whole episodes with the current policy pi(a|s), then take one gradient step
on -mean_t[ weight_t * log pi(a_t|s_t) ], which makes each action more likely in proportion to its
weight: `--weight total`, the whole episode's return (the textbook form); `--weight reward-to-go`,
only the rewards that came after it; minus a baseline, `--baseline value` (a learned V(s_t)) or
`--baseline mean`, to cut the variance.

    python reinforce.py --env-id CartPole-v1 --weight total --baseline none
"""

import json
import os
import pickle
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import tyro


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """name of this experiment (part of the run name); defaults to the script's file name"""
    seed: int = 1
    """seed of the experiment (torch, numpy and the environments)"""
    cuda: bool = False
    """if toggled, run the networks on the GPU (tiny MLPs are usually faster on the CPU)"""
    track: bool = False
    """if toggled, log the run to Weights & Biases (works with WANDB_MODE=offline)"""
    wandb_project_name: str = "rlref"
    """the wandb project name"""
    wandb_entity: str | None = None
    """the wandb entity (team); None uses your default entity"""
    capture_video: bool = False
    """if toggled, record videos of env 0 to `videos/` (needs moviepy)"""
    save_model: bool = False
    """if toggled, save weights and args to `runs/{run_name}/{exp_name}.pt`"""
    eval_checkpoint: str | None = None
    """path of a saved model: evaluate it for `--eval-episodes` episodes instead of training"""
    eval_episodes: int = 10
    """number of episodes for the evaluation of a saved model"""

    env_id: str = "CartPole-v1"
    """the id of the gymnasium environment"""
    total_timesteps: int = 200_000
    """total environment steps of the experiment (steps of the episodes learned from)"""
    learning_rate: float = 1e-2
    """the learning rate of the policy's Adam optimizer"""
    num_episodes: int = 8
    """the number of whole episodes per gradient step, played side by side in as many envs"""
    gamma: float = 0.99
    """the discount factor gamma of the returns"""
    weight: Literal["total", "reward-to-go"] = "reward-to-go"
    """the weight of log pi(a_t|s_t): `total`, the episode's discounted return; `reward-to-go`, the return from t on"""
    baseline: Literal["none", "value", "mean"] = "value"
    """what is subtracted from the weight: `none`; `value`, a learned V(s_t); `mean`, the batch mean of the weights"""
    value_learning_rate: float = 1e-2
    """`--baseline value`: the learning rate of the value network's Adam optimizer"""
    value_steps: int = 10
    """`--baseline value`: gradient steps of the value network on each batch"""

class UsageError(ValueError):
    """A setting the script cannot run with; raised before training, printed as one line."""


# --- environments: gymnasium 1.x vector env with SAME_STEP autoreset ---
# A sub-env whose episode ends (terminated or truncated) is reset inside the same step(): the obs it
# returns is the next episode's first, and the ended episode's last obs is in info["final_obs"].
def make_envs(env_id: str, num_envs: int, capture_video: bool = False, run_name: str = ""):
    thunks = [lambda: gym.make(env_id, disable_env_checker=True)] * num_envs
    if capture_video:  # record env 0's episodes
        thunks[0] = lambda: gym.wrappers.RecordVideo(gym.make(env_id, render_mode="rgb_array"), f"videos/{run_name}")
    try:  # copy=False: step() returns its internal obs array; we copy it into storage at once
        envs = gym.vector.SyncVectorEnv(thunks, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP, copy=False)
    except gym.error.Error as e:  # an unknown id, MuJoCo without gymnasium[mujoco], a video without moviepy
        raise UsageError(f"{env_id}: {e}") from None
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    if not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1):
        raise UsageError(f"the MLP needs a flat Box observation space; {env_id} has {obs_space}")
    box_1d = isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1
    if not (isinstance(action_space, gym.spaces.Discrete) or box_1d):
        raise UsageError(f"only Discrete and 1-D Box action spaces are handled; {env_id} has {action_space}")
    return envs


def check_args(args: Args):
    """Refuse settings that cannot work, before training, each with one line that says what to do."""
    for name in ["total_timesteps", "num_episodes", "value_steps", "eval_episodes"]:
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if not 0.0 <= args.gamma <= 1.0:
        raise UsageError(f"--gamma must be in [0, 1], got {args.gamma}")
    if args.cuda and not torch.cuda.is_available():
        raise UsageError("--cuda was given but torch sees no CUDA device; drop --cuda")
    if args.env_id in gym.registry and gym.spec(args.env_id).max_episode_steps is None:
        raise UsageError(f"this script learns from whole episodes and {args.env_id} has no time limit; "
                         "register it with max_episode_steps")


# --- networks: the policy, and the value network of `--baseline value` ---
def layer_init(layer: nn.Linear, std=np.sqrt(2), bias_const=0.0):
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias_const)
    return layer


def mlp(in_dim: int, out_dim: int, out_std: float, hidden: int = 64) -> nn.Sequential:
    return nn.Sequential(
        layer_init(nn.Linear(in_dim, hidden)), nn.Tanh(),
        layer_init(nn.Linear(hidden, hidden)), nn.Tanh(),
        layer_init(nn.Linear(hidden, out_dim), std=out_std),
    )


class Agent(nn.Module):
    """Actor pi(a|s): Categorical for Discrete actions, diagonal Gaussian with a state-independent log-std
    for Box actions. Critic V(s): trained and used with `--baseline value` only."""

    def __init__(self, obs_dim: int, action_space: gym.Space):
        super().__init__()
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        action_dim = int(action_space.n) if self.discrete else action_space.shape[0]
        self.actor = mlp(obs_dim, action_dim, out_std=0.01)  # logits, or the Gaussian mean
        self.critic = mlp(obs_dim, 1, out_std=1.0)
        if not self.discrete:
            self.actor_logstd = nn.Parameter(torch.zeros(action_dim))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def dist_params(self, obs: torch.Tensor) -> torch.Tensor:
        """What pi(.|s) is built from: the logits, or the Gaussian mean and log-std side by side."""
        out = self.actor(obs)
        return out if self.discrete else torch.cat([out, self.actor_logstd.expand_as(out)], dim=-1)

    # What torch.distributions computes (tests check it), written out: fewer ops for the backward pass.
    def log_prob_entropy(self, params: torch.Tensor, actions: torch.Tensor):
        """log pi(a|s) of the given actions, and the entropy H(pi(.|s)), per state."""
        if self.discrete:
            logp = params.log_softmax(-1)  # log p(a) = logit_a - log sum_b exp(logit_b)
            entropy = -(logp.exp() * logp).sum(-1)  # H = -sum_a p(a) log p(a)
            return logp.gather(-1, actions.unsqueeze(-1)).squeeze(-1), entropy
        mean, logstd = params.chunk(2, dim=-1)
        # log N(a; mu, sigma^2) = -(a - mu)^2 / (2 sigma^2) - log sigma - log(2 pi)/2, summed over action dims
        log_prob = (-0.5 * ((actions - mean) / logstd.exp()) ** 2 - logstd - 0.5 * np.log(2 * np.pi)).sum(-1)
        entropy = (logstd + 0.5 + 0.5 * np.log(2 * np.pi)).sum(-1)  # H = log sigma + (1 + log 2 pi)/2 per dim
        return log_prob, entropy


# --- acting in the episodes: a numpy copy of the actor ---
# At num_envs rows a call, torch spends most of its time dispatching ops; numpy does not (benchmarks/README.md).
NUMPY_ACTIVATIONS = {nn.Tanh: np.tanh, nn.ReLU: lambda x: np.maximum(x, 0.0)}


class NumpyPolicy:
    """Samples a ~ pi(.|s) with a numpy copy of agent.actor, taken before each batch. Checked on probe_obs
    against agent.dist_params, which the update's log pi(a|s) comes from: it raises rather than diverge."""

    def __init__(self, agent: Agent, rng: np.random.Generator, probe_obs: np.ndarray):
        self.layers, self.rng = [], rng  # functions of x: Linear as x @ W^T + b, activations by NUMPY_ACTIVATIONS
        for layer in agent.actor:
            if isinstance(layer, nn.Linear):
                weight, bias = layer.weight.detach().cpu().numpy().T.copy(), layer.bias.detach().cpu().numpy().copy()
                self.layers.append(lambda x, weight=weight, bias=bias: x @ weight + bias)
            elif type(layer) in NUMPY_ACTIVATIONS:
                self.layers.append(NUMPY_ACTIVATIONS[type(layer)])
            else:
                raise UsageError(f"NumpyPolicy has no numpy version of layer {layer}; add one to NUMPY_ACTIVATIONS")
        self.std = None if agent.discrete else agent.actor_logstd.detach().cpu().exp().numpy()
        out = self.forward(probe_obs)
        got = out if agent.discrete else np.concatenate([out, np.broadcast_to(np.log(self.std), out.shape)], -1)
        with torch.no_grad():
            probe = torch.as_tensor(probe_obs, device=next(agent.parameters()).device)
            expected = agent.dist_params(probe).cpu().numpy()
        if not np.allclose(got, expected, rtol=1e-4, atol=1e-5):
            raise UsageError(f"NumpyPolicy differs from agent.dist_params by {np.abs(got - expected).max():.2g}; "
                             "make it follow your change to Agent, or sample with the torch line beside it")

    def forward(self, obs: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            obs = layer(obs)
        return obs  # logits, or the Gaussian mean

    def sample(self, obs: np.ndarray) -> np.ndarray:
        out = self.forward(obs)
        if self.std is None:  # Gumbel-max: argmax(logits + G), G ~ Gumbel(0,1), is a sample of softmax(logits)
            return (out + self.rng.gumbel(size=out.shape)).argmax(-1)
        return (out + self.std * self.rng.standard_normal(out.shape)).astype(np.float32)  # mean + std * N(0, I)


# --- the math: returns and losses ---
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
    """G_0 = sum_t gamma^t r_t (+ gamma^T * last_value), the episode's discounted return, as every step's weight"""
    return np.full(len(rewards), reward_to_go(rewards, gamma, last_value)[0])


def policy_gradient_loss(logprobs, weights):
    """L = -mean_t[ weight_t * log pi(a_t|s_t) ]; its gradient is the policy-gradient estimate (negated)"""
    return -(weights * logprobs).mean()


def value_loss(values, returns):
    """0.5*E[(V(s_t) - G_t)^2]: the baseline regresses on the weights it is subtracted from"""
    return 0.5 * ((values - returns) ** 2).mean()


# --- evaluate a saved model ---
@torch.no_grad()
def evaluate(path: str, eval_episodes: int = 10, seed: int = 0, capture_video: bool = False) -> list:
    """Run `eval_episodes` episodes with the saved policy's most likely action; returns their returns."""
    try:  # weights_only: unpickles tensors and plain types only, so a foreign file cannot run code
        checkpoint = torch.load(path, weights_only=True)
        saved = Args(**checkpoint["args"])
        envs = make_envs(saved.env_id, 1, capture_video, f"{saved.exp_name}-eval")
        agent = Agent(envs.single_observation_space.shape[0], envs.single_action_space)
        agent.load_state_dict(checkpoint["model"])
    except (OSError, pickle.UnpicklingError, RuntimeError, KeyError, TypeError, AttributeError, gym.error.Error) as e:
        raise UsageError(f"{path}: not a checkpoint written by this script's --save-model ({type(e).__name__})")
    obs, _ = envs.reset(seed=seed)
    returns, episodic_return = [], 0.0
    while len(returns) < eval_episodes:
        out = agent.actor(torch.as_tensor(obs, dtype=torch.float32))
        action = (out.argmax(-1) if agent.discrete else out).numpy()  # the most likely action: argmax, or the mean
        if not agent.discrete:
            action = np.clip(action, envs.single_action_space.low, envs.single_action_space.high)
        obs, reward, terminated, truncated, _ = envs.step(action)
        episodic_return += float(reward[0])
        if terminated[0] or truncated[0]:
            returns.append(episodic_return)
            episodic_return = 0.0
    envs.close()
    return returns


def main(args: Args) -> dict:
    check_args(args)
    if args.eval_checkpoint is not None:  # evaluate a saved model instead of training
        returns = evaluate(args.eval_checkpoint, args.eval_episodes, args.seed, args.capture_video)
        return {"eval_returns": returns, "eval_mean_return": float(np.mean(returns))}

    run_name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    envs = make_envs(args.env_id, args.num_episodes, args.capture_video, run_name)
    if args.track:
        import wandb
        wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, config=asdict(args), name=run_name)
        wandb.define_metric("global_step")
        wandb.define_metric("*", step_metric="global_step")

    # --- seeding: torch (initial weights), numpy (the actions), the envs ---
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    torch.set_num_threads(1)  # networks this small run faster without the thread pool's overhead
    device = torch.device("cuda" if args.cuda else "cpu")
    obs_dim = envs.single_observation_space.shape[0]
    agent = Agent(obs_dim, envs.single_action_space).to(device)
    policy_params = list(agent.actor.parameters()) + ([] if agent.discrete else [agent.actor_logstd])
    optimizer = torch.optim.Adam(policy_params, lr=args.learning_rate)
    value_optimizer = torch.optim.Adam(agent.critic.parameters(), lr=args.value_learning_rate)
    recent_returns = deque(maxlen=10)  # the returns of the last 10 finished episodes
    global_step, start_time, iteration = 0, time.time(), 0

    while global_step < args.total_timesteps:
        iteration += 1
        # --- rollout: every env plays one whole episode with the current policy ---
        obs = envs.reset(seed=args.seed if iteration == 1 else None)[0].astype(np.float32)
        policy = NumpyPolicy(agent, rng, probe_obs=obs)
        playing = np.ones(args.num_episodes, bool)  # env i's episode has not ended yet
        final_obs = np.zeros((args.num_episodes, obs_dim), np.float32)  # s_T of each episode
        truncated_at_end = np.zeros(args.num_episodes, bool)  # ended by the time limit, not by termination
        obs_steps, action_steps, reward_steps = [], [], []  # one (num_episodes, ...) array per step
        episode_returns, episode_lengths = np.zeros(args.num_episodes), np.zeros(args.num_episodes, np.int64)
        while playing.any():
            obs_steps.append(obs)
            # plain torch: torch.distributions.Categorical(logits=agent.dist_params(torch.as_tensor(obs))).sample()
            action = policy.sample(obs)
            action_steps.append(action)
            if not agent.discrete:  # the Gaussian sample is stored; only the env sees it clipped
                action = np.clip(action, envs.single_action_space.low, envs.single_action_space.high)
            raw_obs, reward, terminated, truncated, info = envs.step(action)
            done = (terminated | truncated) & playing  # an env whose episode has ended waits for the others
            obs = raw_obs.astype(np.float32)
            reward_steps.append(reward.astype(np.float32))
            global_step += int(playing.sum())

            # --- episode ends: s_T and whether a time limit ended it (for the bootstrap); undiscounted return ---
            episode_returns += reward * playing
            episode_lengths += playing
            for i in np.flatnonzero(done):
                final_obs[i], truncated_at_end[i] = info["final_obs"][i], not terminated[i]
                recent_returns.append(episode_returns[i])
                print(f"global_step={global_step}, episodic_return={episode_returns[i]:.2f}")
                if args.track:
                    wandb.log({"global_step": global_step, "charts/episodic_return": episode_returns[i],
                               "charts/episodic_length": episode_lengths[i]})
            playing &= ~done

        # Episode i is rows 0..n-1 of column i, n = episode_lengths[i]; flatten the episodes into one batch.
        obs_steps, action_steps, reward_steps = np.stack(obs_steps), np.stack(action_steps), np.stack(reward_steps)
        b_obs, b_actions = (torch.as_tensor(np.concatenate([x[:n, i] for i, n in enumerate(episode_lengths)]),
                                            device=device) for x in (obs_steps, action_steps))
        last_values = agent.value(torch.as_tensor(final_obs, device=device)).detach().cpu().numpy()  # V(s_T)

        # --- weights: total return or reward-to-go, bootstrapped on truncation ---
        # Without a learned V, a truncated episode's last steps look worse than they are; with one, V(s_T) fills in.
        weight_fn = total_return if args.weight == "total" else reward_to_go
        bootstrap = truncated_at_end & (args.baseline == "value")  # use V(s_T) after a truncation, with a learned V
        b_weights = np.concatenate([weight_fn(reward_steps[:n, i], args.gamma, last_values[i] if bootstrap[i] else 0.0)
                                    for i, n in enumerate(episode_lengths)])
        b_weights = torch.as_tensor(b_weights.astype(np.float32), device=device)

        # --- baseline: subtract b(s_t); E[grad log pi(a|s) * b(s)] = 0, so the gradient stays unbiased ---
        if args.baseline == "value":
            advantages = b_weights - agent.value(b_obs).detach()
        elif args.baseline == "mean":
            advantages = b_weights - b_weights.mean()
        else:
            advantages = b_weights

        # --- update: one policy-gradient step on the batch of whole episodes ---
        new_logprob, entropy = agent.log_prob_entropy(agent.dist_params(b_obs), b_actions)
        pg_loss = policy_gradient_loss(new_logprob, advantages)
        optimizer.zero_grad()
        pg_loss.backward()
        optimizer.step()
        if args.baseline == "value":  # fit the baseline: V(s_t) regresses on the weights it is subtracted from
            for _ in range(args.value_steps):
                v_loss = value_loss(agent.value(b_obs), b_weights)
                value_optimizer.zero_grad()
                v_loss.backward()
                value_optimizer.step()

        # --- logging ---
        sps = int(global_step / (time.time() - start_time))
        mean_return = float(np.mean(recent_returns))
        if iteration % 10 == 0 or global_step >= args.total_timesteps:
            print(f"global_step={global_step}, SPS={sps}, mean_return_last10={mean_return:.2f}")
        if args.track:
            wandb.log({"global_step": global_step, "charts/SPS": sps, "losses/policy_loss": pg_loss.item(),
                       "losses/entropy": entropy.mean().item()}
                      | ({"losses/value_loss": v_loss.item()} if args.baseline == "value" else {}))

    envs.close()
    result = {"env_id": args.env_id, "global_step": global_step, "mean_return_last10": mean_return, "sps": sps,
              "wall_seconds": round(time.time() - start_time, 2)}
    if args.save_model:  # tensors and plain types only (see evaluate)
        result["model_path"] = path = f"runs/{run_name}/{args.exp_name}.pt"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.save({"model": agent.cpu().state_dict(), "args": asdict(args)}, path)
        result["eval_mean_return"] = float(np.mean(evaluate(path, args.eval_episodes, args.seed)))
    if args.track:
        wandb.finish()
    return result


if __name__ == "__main__":
    try:
        print(json.dumps(main(tyro.cli(Args))))
    except UsageError as e:
        raise SystemExit(f"{os.path.basename(__file__)}: error: {e}")
