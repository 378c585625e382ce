"""REINFORCE: the Monte-Carlo policy gradient (Williams 1992), discrete and continuous actions.

The first chapter. Play whole episodes with the policy pi(a|s), then step on
-mean_t[ weight_t * log pi(a_t|s_t) ]: each action gets likelier in proportion to its weight.
`--weight total`: the episode's return (the textbook form); `reward-to-go`: the rewards after
it; minus a baseline (`--baseline value`, a learned V(s_t), or `mean`) to cut the variance.

    python reinforce.py --env-id CartPole-v1 --weight total --baseline none
"""

import json
import os
import pickle
import signal
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import tyro
from gymnasium.wrappers import RecordVideo
from gymnasium.wrappers.utils import RunningMeanStd
from torch.distributions import Categorical, Independent, Normal


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment (part of the run name)"""
    seed: int = 1
    """seed of the experiment (torch and the environments)"""
    cuda: bool = False
    """if toggled, run the networks on the GPU"""
    track: bool = False
    """if toggled, log the run to Weights & Biases (works with WANDB_MODE=offline)"""
    wandb_project_name: str = "rlref"
    """the wandb project name"""
    wandb_entity: str | None = None
    """the wandb entity (team); None uses your default entity"""
    capture_video: bool = False
    """if toggled, record videos of env 0 to `videos/` (needs moviepy)"""
    save_model: bool = False
    """if toggled, save the model to `runs/{run_name}/{exp_name}.pt` and evaluate it"""
    save_every: int = 0
    """save the run's checkpoint there every this many env steps too (0: never)"""
    resume: str | None = None
    """path of a checkpoint to continue its run from: its settings (flags given replace them),
    model, optimizer and step"""
    eval_checkpoint: str | None = None
    """path of a saved model to evaluate instead of training"""
    eval_episodes: int = 10
    """number of episodes for the evaluation of a saved model"""

    env_id: str = "CartPole-v1"
    """the id of the gymnasium environment"""
    total_timesteps: int = 200_000
    """total environment steps of the experiment"""
    learning_rate: float = 1e-2
    """the learning rate of the policy's Adam optimizer"""
    num_episodes: int = 8
    """whole episodes per gradient step, one per env"""
    anneal_lr: bool = False
    """if toggled, the policy's learning rate decays linearly to 0 over the run"""
    gamma: float = 0.99
    """the discount factor gamma"""
    weight: Literal["total", "reward-to-go"] = "reward-to-go"
    """the weight of log pi(a_t|s_t): the episode's return, or the return from t on"""
    baseline: Literal["none", "value", "mean"] = "value"
    """subtracted from the weight: nothing, a learned V(s_t), or the batch mean"""
    value_learning_rate: float = 1e-2
    """`--baseline value`: the learning rate of V's optimizer"""
    value_steps: int = 10
    """`--baseline value`: V's gradient steps per batch"""
    max_grad_norm: float = 0.5
    """the maximum norm for gradient clipping"""


class UsageError(ValueError):
    """A setting the script cannot run with, printed as one line."""


# What a resumed run takes from its checkpoint and cannot change: the env and the network.
FIXED_ON_RESUME = ["exp_name", "seed", "env_id", "num_episodes"]


# --- environments: gymnasium 1.x vector env with SAME_STEP autoreset ---
# An env whose episode ends is reset inside the same step(): the obs it
# returns is the next episode's first; the last obs is info["final_obs"].
def make_envs(env_id: str, num_envs: int, capture_video: bool = False, run_name: str = ""):
    thunks = [lambda: gym.make(env_id)] * num_envs
    video_folder = f"videos/{run_name}"
    if capture_video:  # record env 0's episodes
        thunks[0] = lambda: RecordVideo(gym.make(env_id, render_mode="rgb_array"), video_folder)
    autoreset_mode = gym.vector.AutoresetMode.SAME_STEP
    try:
        envs = gym.vector.SyncVectorEnv(thunks, autoreset_mode=autoreset_mode)
    except gym.error.Error as e:  # an unknown id, a missing package
        raise UsageError(f"{env_id}: {e}") from None
    obs_space = envs.single_observation_space
    action_space = envs.single_action_space
    if not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1):
        raise UsageError(f"the MLP needs a flat Box observation space; {env_id} has {obs_space}")
    box_1d = isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1
    if not (isinstance(action_space, gym.spaces.Discrete) or box_1d):
        raise UsageError(
            f"only Discrete and 1-D Box actions are handled; {env_id} has {action_space}"
        )
    return envs


def true_next_obs(obs: np.ndarray, done: np.ndarray, info: dict) -> np.ndarray:
    """s_{t+1} of each env: info["final_obs"] where the episode ended, else the returned obs"""
    if not done.any():
        return obs
    next_obs = obs.copy()
    for i in np.flatnonzero(done):
        next_obs[i] = info["final_obs"][i]
    return next_obs


def check_args(args: Args):
    """Refuse settings that cannot work, with a line that says what to do."""
    for name in ["total_timesteps", "num_episodes", "value_steps", "eval_episodes"]:
        value = getattr(args, name)
        if value <= 0:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must be a positive integer, got {value}")
    if not 0.0 <= args.gamma <= 1.0:
        raise UsageError(f"--gamma must be in [0, 1], got {args.gamma}")
    if args.save_every < 0:
        raise UsageError(f"--save-every must be 0 (never) or positive, got {args.save_every}")
    if args.env_id in gym.registry and gym.spec(args.env_id).max_episode_steps is None:
        raise UsageError(f"{args.env_id} has no time limit; register it with max_episode_steps")
    if args.cuda and not torch.cuda.is_available():
        raise UsageError("--cuda was given but torch sees no CUDA device; drop --cuda")


# --- normalization of observations and rewards (continuous control) ---
class Normalizer:
    """Continuous control (`enabled`): obs normalized by their running mean and std, rewards by
    the running std of the discounted return. Otherwise obs are only cast to float32."""

    def __init__(self, obs_dim: int, num_envs: int, gamma: float, enabled: bool):
        self.enabled = enabled
        self.gamma = gamma
        self.discounted_return = np.zeros(num_envs)
        self.obs_rms = RunningMeanStd(shape=(obs_dim,))
        self.return_rms = RunningMeanStd()

    def obs(self, raw_obs: np.ndarray, update: bool = False) -> np.ndarray:
        if not self.enabled:
            return raw_obs.astype(np.float32)
        if update:
            self.obs_rms.update(raw_obs)
        obs = (raw_obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + 1e-8)
        return np.clip(obs, -10.0, 10.0).astype(np.float32)

    def reset(self, raw_obs: np.ndarray) -> np.ndarray:
        """A new episode in every env: no discounted return carries over."""
        self.discounted_return[:] = 0.0
        return self.obs(raw_obs, update=True)

    def step(self, raw_obs, raw_next_obs, reward, done):
        """One env step: update the statistics; return obs, next_obs, reward"""
        obs = self.obs(raw_obs, update=True)
        if self.enabled:
            self.discounted_return = self.discounted_return * self.gamma + reward
            self.return_rms.update(self.discounted_return)
            self.discounted_return[done] = 0.0
            reward = np.clip(reward / np.sqrt(self.return_rms.var + 1e-8), -10.0, 10.0)
        return obs, self.obs(raw_next_obs), reward

    def state_dict(self) -> dict:
        """The running statistics, as tensors and floats"""
        statistics = {"obs_rms": self.obs_rms, "return_rms": self.return_rms}
        return {
            name: {
                "mean": torch.as_tensor(rms.mean),
                "var": torch.as_tensor(rms.var),
                "count": float(rms.count),
            }
            for name, rms in statistics.items()
        }

    def load_state_dict(self, state: dict):
        for name, rms in {"obs_rms": self.obs_rms, "return_rms": self.return_rms}.items():
            rms.mean = state[name]["mean"].numpy()
            rms.var = state[name]["var"].numpy()
            rms.count = state[name]["count"]


# --- networks: the actor pi(a|s) and the critic V(s) ---
def layer_init(layer: nn.Linear, std=np.sqrt(2), bias_const=0.0):
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias_const)
    return layer


def mlp(in_dim: int, out_dim: int, out_std: float, hidden: int = 64) -> nn.Sequential:
    return nn.Sequential(
        layer_init(nn.Linear(in_dim, hidden)),
        nn.Tanh(),
        layer_init(nn.Linear(hidden, hidden)),
        nn.Tanh(),
        layer_init(nn.Linear(hidden, out_dim), std=out_std),
    )


class Agent(nn.Module):
    """Actor pi(a|s): Categorical for Discrete actions; for Box actions, a diagonal Gaussian
    with a state-independent log-std (its log_prob sums over the action's dims).
    Critic V(s): trained and used with `--baseline value` only."""

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

    def dist(self, obs: torch.Tensor):
        """The distribution pi(.|s)."""
        out = self.actor(obs)
        if self.discrete:
            return Categorical(logits=out)
        std = self.actor_logstd.exp().expand_as(out)
        return Independent(Normal(out, std), 1)


# --- the math: returns and losses ---
def reward_to_go(rewards: np.ndarray, gamma: float, last_value: float = 0.0) -> np.ndarray:
    """G_t = r_t + gamma*r_{t+1} + ... + gamma^(T-t)*last_value, for one episode.
    last_value: 0 after a termination; after a truncation, V(s_T) estimates the rest."""
    returns = np.zeros(len(rewards))
    running = last_value
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running  # G_t = r_t + gamma * G_{t+1}
        returns[t] = running
    return returns


def total_return(rewards: np.ndarray, gamma: float, last_value: float = 0.0) -> np.ndarray:
    """G_0 = sum_t gamma^t r_t (+ gamma^T last_value), the same at every step"""
    return np.full(len(rewards), reward_to_go(rewards, gamma, last_value)[0])


def policy_gradient_loss(logprobs, weights):
    """L = -mean_t[ weight_t * log pi(a_t|s_t) ]; -grad L is the policy gradient"""
    return -(weights * logprobs).mean()


def value_loss(values, returns):
    """0.5*E[(V(s_t) - G_t)^2]: V regresses on the weights"""
    return 0.5 * ((values - returns) ** 2).mean()


def explained_variance(values: np.ndarray, returns: np.ndarray) -> float:
    """1 - Var(R - V) / Var(R): 1 for a perfect critic, 0 for a constant"""
    if returns.var() == 0:
        return float("nan")
    return float(1 - (returns - values).var() / returns.var())


# --- checkpoints: save, load, resume; evaluate a saved model ---
def save_checkpoint(path: str, checkpoint: dict):
    """Write a temporary file, then rename it: a crash while saving never leaves a broken file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save(checkpoint, path + ".tmp")
    os.replace(path + ".tmp", path)


def load_checkpoint(path: str, keys=("model", "obs_rms", "args")) -> dict:
    """The checkpoint --save-model wrote, or a UsageError saying what is wrong"""
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file; pass the .pt file that --save-model wrote")
    try:  # weights_only: a foreign file cannot run code
        checkpoint = torch.load(path, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        message = f"torch.load(weights_only=True) cannot read it ({type(e).__name__})"
        raise UsageError(f"{path}: {message}; pass a .pt file that --save-model wrote") from None
    for key in keys:
        if not isinstance(checkpoint, dict) or key not in checkpoint:
            raise UsageError(f"{path}: no '{key}' in it; it was not saved by this script")
    return checkpoint


def resumed_args(args: Args, checkpoint: dict) -> Args:
    """The saved run's settings, but those given on the command line (not at their default)
    replace them; the env and the network cannot change."""
    defaults = asdict(Args())
    given = {k: v for k, v in asdict(args).items() if v != defaults[k]}
    for name in FIXED_ON_RESUME:
        if name in given and given[name] != checkpoint["args"][name]:
            flag = "--" + name.replace("_", "-")
            saved = checkpoint["args"][name]
            raise UsageError(f"{flag} cannot change when resuming (the run has {saved}); drop it")
    try:
        return Args(**{**checkpoint["args"], **given})
    except TypeError as e:
        raise UsageError(f"{args.resume}: its args are not this script's ({e})") from None


@torch.no_grad()
def evaluate(path: str, eval_episodes: int = 10, seed: int = 0, capture_video: bool = False):
    """The returns of `eval_episodes` episodes of the most likely action"""
    checkpoint = load_checkpoint(path)
    try:
        saved = Args(**checkpoint["args"])
    except TypeError as e:
        raise UsageError(f"{path}: its args are not this script's ({e})") from None
    envs = make_envs(saved.env_id, 1, capture_video, f"{saved.exp_name}-eval")
    obs_dim = envs.single_observation_space.shape[0]
    agent = Agent(obs_dim, envs.single_action_space)
    try:
        agent.load_state_dict(checkpoint["model"])
    except RuntimeError as e:  # a missing layer, a size mismatch
        message = " ".join(str(e).split())
        raise UsageError(f"{path}: the saved model does not fit this Agent: {message}") from None
    normalizer = Normalizer(obs_dim, 1, saved.gamma, enabled=not agent.discrete)
    normalizer.obs_rms.mean = checkpoint["obs_rms"]["mean"].numpy()
    normalizer.obs_rms.var = checkpoint["obs_rms"]["var"].numpy()
    obs, _ = envs.reset(seed=seed)
    returns = []
    episodic_return = 0.0
    while len(returns) < eval_episodes:
        obs_tensor = torch.as_tensor(normalizer.obs(obs))  # with the saved statistics
        action = agent.dist(obs_tensor).mode.numpy()  # argmax, or the Gaussian mean
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
    resume_from = None
    if args.resume is not None:  # continue a saved run: its settings, model, optimizer, step
        resume_from = load_checkpoint(args.resume, ("model", "args", "optimizer", "global_step"))
        args = resumed_args(args, resume_from)
        if resume_from["global_step"] >= args.total_timesteps:
            raise UsageError(f"{args.resume}: that run is done; pass a larger --total-timesteps")
    check_args(args)
    if args.eval_checkpoint is not None:  # evaluate a saved model instead of training
        returns = evaluate(args.eval_checkpoint, args.eval_episodes, args.seed, args.capture_video)
        return {"eval_returns": returns, "eval_mean_return": float(np.mean(returns))}

    run_name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    if resume_from is not None:  # the same folder, and the same wandb run
        run_name = resume_from["run_name"]
    path = f"runs/{run_name}/{args.exp_name}.pt"
    envs = make_envs(args.env_id, args.num_episodes, args.capture_video, run_name)
    if args.track:
        import wandb

        wandb.init(
            project=args.wandb_project_name,
            entity=args.wandb_entity,
            config=asdict(args),
            name=run_name,
            id=resume_from["wandb_id"] if resume_from else None,
            resume="allow",
        )
        wandb.define_metric("global_step")
        wandb.define_metric("*", step_metric="global_step")

    # --- seeding: torch (initial weights and the sampled actions), the envs ---
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # the networks are small: see benchmarks/README.md
    device = torch.device("cuda" if args.cuda else "cpu")
    obs_dim = envs.single_observation_space.shape[0]
    action_space = envs.single_action_space
    agent = Agent(obs_dim, action_space).to(device)
    policy_params = [p for name, p in agent.named_parameters() if not name.startswith("critic")]
    optimizer = torch.optim.Adam(policy_params, lr=args.learning_rate, eps=1e-5)
    value_optimizer = torch.optim.Adam(agent.critic.parameters(), lr=args.value_learning_rate)
    normalizer = Normalizer(obs_dim, args.num_episodes, args.gamma, enabled=not agent.discrete)
    global_step = 0
    iteration = 0
    if resume_from is not None:  # where the saved run stopped
        agent.load_state_dict(resume_from["model"])
        optimizer.load_state_dict(resume_from["optimizer"])
        value_optimizer.load_state_dict(resume_from["value_optimizer"])
        normalizer.load_state_dict(resume_from)
        global_step = resume_from["global_step"]
        iteration = resume_from["iteration"]
        torch.set_rng_state(resume_from["torch_rng"])
        print(f"resuming {run_name} at global_step={global_step}; the envs start new episodes")

    def checkpoint() -> dict:
        """What --resume and --eval-checkpoint need: tensors and plain types only"""
        return {
            "model": {k: v.cpu() for k, v in agent.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "value_optimizer": value_optimizer.state_dict(),
            **normalizer.state_dict(),
            "args": asdict(args),
            "run_name": run_name,
            "global_step": global_step,
            "iteration": iteration,
            "torch_rng": torch.get_rng_state(),
            "wandb_id": wandb.run.id if args.track else None,
        }

    recent_returns = deque(maxlen=10)  # the last 10 episodic returns
    start_step = global_step
    start_time = time.time()
    first_iteration = iteration + 1
    # Ctrl-C (or a job's SIGTERM) lets the iteration finish, then the run saves and stops.
    stop = []
    handlers = {
        s: signal.signal(s, lambda signum, frame: stop.append(signum))
        for s in [signal.SIGINT, signal.SIGTERM]
    }

    while global_step < args.total_timesteps:
        iteration += 1
        previous_step = global_step
        if args.anneal_lr:  # lr_t = lr * (1 - t/T), t the env steps so far
            lr_now = args.learning_rate * (1.0 - global_step / args.total_timesteps)
            for group in optimizer.param_groups:
                group["lr"] = lr_now

        # --- rollout: every env plays one whole episode with the current policy ---
        obs, _ = envs.reset(seed=args.seed + global_step if iteration == first_iteration else None)
        obs = normalizer.reset(obs)
        playing = np.ones(args.num_episodes, bool)  # episodes not ended yet
        final_obs = np.zeros((args.num_episodes, obs_dim), np.float32)  # s_T of each episode
        truncated_at_end = np.zeros(args.num_episodes, bool)  # ended by the time limit
        obs_steps = []  # one (num_episodes, ...) array per step
        action_steps = []
        reward_steps = []
        episode_returns = np.zeros(args.num_episodes)
        episode_lengths = np.zeros(args.num_episodes, np.int64)
        while playing.any():
            with torch.no_grad():  # a ~ pi(.|s); acting needs no gradient
                action = agent.dist(torch.as_tensor(obs, device=device)).sample().cpu().numpy()
            obs_steps.append(obs)
            action_steps.append(action)
            if not agent.discrete:  # the env sees it clipped
                action = np.clip(action, action_space.low, action_space.high)
            raw_obs, reward, terminated, truncated, info = envs.step(action)
            done = terminated | truncated
            next_obs = true_next_obs(raw_obs, done, info)
            obs, next_obs, scaled_reward = normalizer.step(raw_obs, next_obs, reward, done)
            reward_steps.append(scaled_reward)
            global_step += int(playing.sum())

            # --- episode ends: s_T, truncated or not; undiscounted return ---
            episode_returns += reward * playing
            episode_lengths += playing
            finished = done & playing  # a finished env waits
            for i in np.flatnonzero(finished):
                final_obs[i] = next_obs[i]
                truncated_at_end[i] = not terminated[i]
                recent_returns.append(episode_returns[i])
                print(f"global_step={global_step}, episodic_return={episode_returns[i]:.2f}")
                if args.track:
                    wandb.log(
                        {
                            "global_step": global_step,
                            "charts/episodic_return": episode_returns[i],
                            "charts/episodic_length": episode_lengths[i],
                        }
                    )
            playing &= ~finished

        # The batch: step t of env i, while t < episode_lengths[i]
        in_episode = np.arange(len(obs_steps)) < episode_lengths[:, None]  # (env, step)
        b_obs = torch.as_tensor(np.stack(obs_steps, axis=1)[in_episode], device=device)
        b_actions = torch.as_tensor(np.stack(action_steps, axis=1)[in_episode], device=device)
        reward_steps = np.stack(reward_steps, axis=1)  # (env, step)
        with torch.no_grad():
            values = agent.value(b_obs).cpu().numpy()  # V(s_t)
            last_values = agent.value(torch.as_tensor(final_obs, device=device)).cpu().numpy()

        # --- weights: total return or reward-to-go ---
        # V(s_T) can bootstrap a truncation only where V fits reward-to-go
        weight_fn = total_return if args.weight == "total" else reward_to_go
        use_v = args.baseline == "value" and args.weight == "reward-to-go"
        last_values = last_values * (use_v & truncated_at_end)  # V(s_T) or 0
        weights = []
        for i, n in enumerate(episode_lengths):
            weights.append(weight_fn(reward_steps[i, :n], args.gamma, last_values[i]))
        weights = np.concatenate(weights).astype(np.float32)
        b_weights = torch.as_tensor(weights, device=device)

        # --- baseline: subtract b(s_t); E[grad log pi(a|s) * b(s)] = 0, so no bias ---
        if args.baseline == "value":
            advantages = b_weights - torch.as_tensor(values, device=device)
        elif args.baseline == "mean":
            advantages = b_weights - b_weights.mean()
        else:
            advantages = b_weights

        # --- update: one policy-gradient step on the batch of whole episodes ---
        new_dist = agent.dist(b_obs)
        new_logprob = new_dist.log_prob(b_actions)
        pg_loss = policy_gradient_loss(new_logprob, advantages)
        entropy_loss = new_dist.entropy().mean()
        optimizer.zero_grad()
        pg_loss.backward()
        nn.utils.clip_grad_norm_(policy_params, args.max_grad_norm)
        optimizer.step()
        if args.baseline == "value":  # fit V(s_t) to the weights
            for _ in range(args.value_steps):
                v_loss = value_loss(agent.value(b_obs), b_weights)
                value_optimizer.zero_grad()
                v_loss.backward()
                value_optimizer.step()

        # --- logging ---
        sps = int((global_step - start_step) / (time.time() - start_time))
        mean_return = round(float(np.mean(recent_returns)), 2) if recent_returns else None
        if iteration % 10 == 0 or global_step >= args.total_timesteps:
            print(f"global_step={global_step}, SPS={sps}, mean_return_last10={mean_return}")
        if args.track:
            metrics = {
                "global_step": global_step,
                "charts/learning_rate": optimizer.param_groups[0]["lr"],
                "charts/SPS": sps,
                "losses/policy_loss": pg_loss.item(),
                "losses/entropy": entropy_loss.item(),
            }
            if args.baseline == "value":
                metrics["losses/value_loss"] = v_loss.item()
                metrics["losses/explained_variance"] = explained_variance(values, weights)
            wandb.log(metrics)

        # --- checkpoint: every --save-every env steps and at the end; when stopped, now ---
        every = args.save_every
        last = global_step >= args.total_timesteps
        save_now = every > 0 and (global_step // every > previous_step // every or last)
        if save_now or (stop and (args.save_every > 0 or args.save_model)):
            save_checkpoint(path, checkpoint())
        if stop:
            break

    envs.close()
    for s, handler in handlers.items():
        signal.signal(s, handler)
    result = {
        "env_id": args.env_id,
        "global_step": global_step,
        "mean_return_last10": mean_return,
        "sps": sps,
        "wall_seconds": round(time.time() - start_time, 2),
    }
    if stop:
        saved = args.save_every > 0 or args.save_model
        how = f"resume: python {os.path.basename(__file__)} --resume {path}"
        if not saved:
            how = "not saved (no --save-every or --save-model)"
        print(f"stopped at global_step={global_step}; {how}")
        result["stopped"] = True
    elif args.save_model:
        save_checkpoint(path, checkpoint())
        result["model_path"] = path
        result["eval_mean_return"] = float(np.mean(evaluate(path, args.eval_episodes, args.seed)))
    if args.track:
        wandb.finish()
    return result


if __name__ == "__main__":
    try:
        result = main(tyro.cli(Args))
    except UsageError as e:
        raise SystemExit(f"{os.path.basename(__file__)}: error: {e}") from None
    print(json.dumps(result))
    if result.get("stopped"):  # by Ctrl-C: the shell's exit status for SIGINT
        raise SystemExit(130)
