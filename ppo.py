"""PPO: proximal policy optimization (Schulman et al. 2017), discrete and continuous actions.

What this chapter adds to actor_critic.py: each rollout is reused for several epochs of minibatch
updates, with the policy gradient weighted by the importance ratio pi(a|s) / pi_old(a|s); the new
policy is kept close to the old one by clipping the ratio (PPO-Clip, `--loss clip`) or by an
adaptive KL penalty (PPO-KL, `--loss kl`).

    python ppo.py --env-id CartPole-v1
    # MuJoCo (pip install "gymnasium[mujoco]"), CleanRL's continuous-control settings:
    python ppo.py --env-id HalfCheetah-v5 --total-timesteps 1000000 --num-envs 1 --num-steps 2048 \
        --learning-rate 3e-4 --update-epochs 10 --num-minibatches 32 --ent-coef 0
"""

import copy
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
from torch.distributions import Categorical, Independent, Normal, kl_divergence


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
    total_timesteps: int = 150_000
    """total environment steps of the experiment"""
    learning_rate: float = 5e-3
    """the learning rate of the Adam optimizer"""
    num_envs: int = 16
    """the number of parallel environments"""
    num_steps: int = 16
    """the number of steps per environment in each rollout"""
    anneal_lr: bool = True
    """if toggled, the learning rate decays linearly to 0 over the run"""
    gamma: float = 0.99
    """the discount factor gamma"""
    gae_lambda: float = 0.95
    """the lambda of generalized advantage estimation"""
    num_minibatches: int = 1
    """the number of minibatches each rollout is split into"""
    update_epochs: int = 4
    """the number of passes over each rollout"""
    norm_adv: bool = True
    """if toggled, normalize advantages to mean 0, std 1 within each minibatch"""
    shared_trunk: bool = False
    """if toggled, the critic shares all but the last layer with the actor"""
    loss: Literal["clip", "kl"] = "clip"
    """the policy objective: `clip` (PPO-Clip) or `kl` (PPO with adaptive KL penalty)"""
    clip_coef: float = 0.2
    """the ratio clipping epsilon of PPO-Clip (also the value clipping range)"""
    kl_target: float = 0.01
    """`--loss kl`: the KL target d_targ of the adaptive beta rule"""
    clip_vloss: bool = True
    """if toggled, use the clipped value loss"""
    ent_coef: float = 0.01
    """the coefficient of the entropy bonus"""
    vf_coef: float = 0.5
    """the coefficient of the value loss"""
    max_grad_norm: float = 0.5
    """the maximum norm for gradient clipping"""
    target_kl: float | None = None
    """stop the epochs of an update early once the approximate KL exceeds this; None: never"""


class UsageError(ValueError):
    """A setting the script cannot run with, printed as one line."""


# What a resumed run takes from its checkpoint and cannot change: the env and the network.
FIXED_ON_RESUME = ["exp_name", "seed", "env_id", "num_envs", "num_steps", "shared_trunk"]


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
    positive = ["total_timesteps", "num_envs", "num_steps", "num_minibatches", "update_epochs"]
    for name in [*positive, "eval_episodes"]:
        value = getattr(args, name)
        if value <= 0:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must be a positive integer, got {value}")
    if not 0.0 <= args.gamma <= 1.0:
        raise UsageError(f"--gamma must be in [0, 1], got {args.gamma}")
    if args.save_every < 0:
        raise UsageError(f"--save-every must be 0 (never) or positive, got {args.save_every}")
    batch_size = args.num_envs * args.num_steps
    if batch_size % args.num_minibatches != 0:
        raise UsageError(
            f"--num-minibatches ({args.num_minibatches}) must divide the batch ({batch_size} steps)"
        )
    if args.total_timesteps < batch_size:
        raise UsageError(
            f"--total-timesteps ({args.total_timesteps}) is smaller than one rollout "
            f"({batch_size} steps)"
        )
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
    Critic V(s): an MLP of its own, or (`shared_trunk`) the actor's layers but the last."""

    def __init__(self, obs_dim: int, action_space: gym.Space, shared_trunk: bool = False):
        super().__init__()
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        action_dim = int(action_space.n) if self.discrete else action_space.shape[0]
        self.actor = mlp(obs_dim, action_dim, out_std=0.01)  # logits, or the Gaussian mean
        if shared_trunk:  # the same layer objects, so the same parameters, and a head of its own
            head = layer_init(nn.Linear(self.actor[-1].in_features, 1), std=1.0)
            self.critic = nn.Sequential(*self.actor[:-1], head)
        else:
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


# --- the math: advantages and losses ---
def gae(rewards, values, next_values, dones, gamma: float, lam: float) -> np.ndarray:
    """Generalized advantage estimation over a (T, N) rollout of numpy arrays.

    delta_t = r_t + gamma*V(s_{t+1}) - V(s_t)           (V(s_{t+1}) = 0 if the episode terminated)
    A_t     = delta_t + gamma*lam*(1 - done_t)*A_{t+1}  (done_t: the episode ended at t, either way)

    So a truncated episode keeps its bootstrap V(final obs) but shares no advantage with the next.
    """
    advantages = np.zeros_like(rewards)
    deltas = rewards + gamma * next_values - values
    last = 0.0
    for t in reversed(range(len(rewards))):
        last = deltas[t] + gamma * lam * (1.0 - dones[t]) * last
        advantages[t] = last
    return advantages


def clip_policy_loss(ratio, advantages, clip_coef: float):
    """PPO-Clip: L = -E[ min(ratio*A, clip(ratio, 1-eps, 1+eps)*A) ]"""
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef) * advantages
    return -torch.min(unclipped, clipped).mean()


def kl_penalty_policy_loss(ratio, advantages, kl, beta: float):
    """PPO-KL: L = -E[ ratio*A - beta*KL(pi_old(.|s) || pi(.|s)) ]"""
    return -(ratio * advantages - beta * kl).mean()


def adapt_kl_beta(beta: float, kl: float, kl_target: float) -> float:
    """The PPO paper's rule, d the update's mean KL:
    beta*2 if d > 1.5*d_targ; beta/2 if d < d_targ/1.5; else beta unchanged."""
    if kl > 1.5 * kl_target:
        return beta * 2.0
    if kl < kl_target / 1.5:
        return beta / 2.0
    return beta


def value_loss(new_values, old_values, returns, clip_coef: float, clip_vloss: bool):
    """0.5*E[(V - R)^2], or clipped: 0.5*E[max((V - R)^2, (V_old + clip(V - V_old, eps) - R)^2)]"""
    unclipped = (new_values - returns) ** 2
    if not clip_vloss:
        return 0.5 * unclipped.mean()
    v_clipped = old_values + torch.clamp(new_values - old_values, -clip_coef, clip_coef)
    return 0.5 * torch.max(unclipped, (v_clipped - returns) ** 2).mean()


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
    agent = Agent(obs_dim, envs.single_action_space, saved.shared_trunk)
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
        if resume_from["iteration"] >= args.total_timesteps // (args.num_envs * args.num_steps):
            raise UsageError(f"{args.resume}: that run is done; pass a larger --total-timesteps")
    check_args(args)
    if args.eval_checkpoint is not None:  # evaluate a saved model instead of training
        returns = evaluate(args.eval_checkpoint, args.eval_episodes, args.seed, args.capture_video)
        return {"eval_returns": returns, "eval_mean_return": float(np.mean(returns))}

    batch_size = args.num_envs * args.num_steps
    num_iterations = args.total_timesteps // batch_size
    run_name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    if resume_from is not None:  # the same folder, and the same wandb run
        run_name = resume_from["run_name"]
    path = f"runs/{run_name}/{args.exp_name}.pt"
    envs = make_envs(args.env_id, args.num_envs, args.capture_video, run_name)
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
    agent = Agent(obs_dim, action_space, args.shared_trunk).to(device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)
    normalizer = Normalizer(obs_dim, args.num_envs, args.gamma, enabled=not agent.discrete)
    kl_beta = 1.0  # PPO-KL's beta, adapted after each update
    global_step = 0
    iteration = 0
    if resume_from is not None:  # where the saved run stopped
        agent.load_state_dict(resume_from["model"])
        optimizer.load_state_dict(resume_from["optimizer"])
        normalizer.load_state_dict(resume_from)
        kl_beta = resume_from["kl_beta"]
        global_step = resume_from["global_step"]
        iteration = resume_from["iteration"]
        torch.set_rng_state(resume_from["torch_rng"])
        print(f"resuming {run_name} at global_step={global_step}; the envs start new episodes")

    def checkpoint() -> dict:
        """What --resume and --eval-checkpoint need: tensors and plain types only"""
        return {
            "model": {k: v.cpu() for k, v in agent.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            **normalizer.state_dict(),
            "args": asdict(args),
            "run_name": run_name,
            "global_step": global_step,
            "iteration": iteration,
            "kl_beta": kl_beta,
            "torch_rng": torch.get_rng_state(),
            "wandb_id": wandb.run.id if args.track else None,
        }

    # Rollout storage, shaped (num_steps, num_envs, ...); next_obs_buf[t] is the true s_{t+1}.
    rollout_shape = (args.num_steps, args.num_envs)
    obs_buf = np.zeros((*rollout_shape, obs_dim), np.float32)
    next_obs_buf = np.zeros((*rollout_shape, obs_dim), np.float32)
    if agent.discrete:
        actions_buf = np.zeros(rollout_shape, np.int64)
    else:
        actions_buf = np.zeros((*rollout_shape, *action_space.shape), np.float32)
    rewards_buf = np.zeros(rollout_shape, np.float32)
    terminated_buf = np.zeros(rollout_shape, np.float32)
    dones_buf = np.zeros(rollout_shape, np.float32)
    episode_returns = np.zeros(args.num_envs)
    episode_lengths = np.zeros(args.num_envs, np.int64)
    recent_returns = deque(maxlen=10)  # the last 10 episodic returns
    start_step = global_step
    start_time = time.time()
    obs, _ = envs.reset(seed=args.seed + global_step)
    obs = normalizer.reset(obs)
    # Ctrl-C (or a job's SIGTERM) lets the iteration finish, then the run saves and stops.
    stop = []
    handlers = {
        s: signal.signal(s, lambda signum, frame: stop.append(signum))
        for s in [signal.SIGINT, signal.SIGTERM]
    }

    first_iteration = iteration + 1
    for iteration in range(first_iteration, num_iterations + 1):
        if args.anneal_lr:  # lr_k = lr * (1 - (k-1)/K)
            lr_now = args.learning_rate * (1.0 - (iteration - 1.0) / num_iterations)
            for group in optimizer.param_groups:
                group["lr"] = lr_now

        # --- rollout: num_steps steps of num_envs envs with the current policy ---
        for step in range(args.num_steps):
            global_step += args.num_envs
            with torch.no_grad():  # a ~ pi(.|s); acting needs no gradient
                action = agent.dist(torch.as_tensor(obs, device=device)).sample().cpu().numpy()
            obs_buf[step] = obs
            actions_buf[step] = action
            if not agent.discrete:  # the env sees it clipped
                action = np.clip(action, action_space.low, action_space.high)
            raw_obs, reward, terminated, truncated, info = envs.step(action)
            done = terminated | truncated
            next_obs = true_next_obs(raw_obs, done, info)
            obs, next_obs_buf[step], rewards_buf[step] = normalizer.step(
                raw_obs, next_obs, reward, done
            )
            terminated_buf[step] = terminated
            dones_buf[step] = done

            # --- episode statistics: undiscounted, unnormalized return ---
            episode_returns += reward
            episode_lengths += 1
            for i in np.flatnonzero(done):
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
            episode_returns[done] = 0.0
            episode_lengths[done] = 0

        # --- values and old log-probs: one batched pass over the rollout ---
        b_obs = torch.as_tensor(obs_buf, device=device).flatten(0, 1)
        b_actions = torch.as_tensor(actions_buf, device=device).flatten(0, 1)
        with torch.no_grad():
            values = agent.value(b_obs).reshape(rollout_shape).cpu().numpy()
            next_values = agent.value(torch.as_tensor(next_obs_buf, device=device)).cpu().numpy()
            b_logprobs = agent.dist(b_obs).log_prob(b_actions)
        if args.loss == "kl":  # pi_old, frozen, for PPO-KL's exact KL
            old_agent = copy.deepcopy(agent).requires_grad_(False)
        next_values = next_values * (1.0 - terminated_buf)  # V(s_{t+1}) = 0 after termination

        # --- advantage: GAE(lambda), lambda=0 the one-step TD error; target R_t = A_t + V(s_t) ---
        advantages = gae(rewards_buf, values, next_values, dones_buf, args.gamma, args.gae_lambda)
        returns = advantages + values
        b_advantages = torch.as_tensor(advantages, device=device).flatten()
        b_returns = torch.as_tensor(returns, device=device).flatten()
        b_values = torch.as_tensor(values, device=device).flatten()

        # --- update: update_epochs passes of minibatch gradient steps on the same rollout ---
        minibatch_size = batch_size // args.num_minibatches
        for _ in range(args.update_epochs):
            for mb in torch.randperm(batch_size, device=device).split(minibatch_size):
                new_dist = agent.dist(b_obs[mb])
                new_logprob = new_dist.log_prob(b_actions[mb])
                logratio = new_logprob - b_logprobs[mb]
                ratio = logratio.exp()  # pi(a|s) / pi_old(a|s)
                with torch.no_grad():  # how far pi has moved from pi_old before this step
                    approx_kl = ((ratio - 1) - logratio).mean()  # k3 estimator of KL(pi_old || pi)
                    clipfrac = ((ratio - 1.0).abs() > args.clip_coef).float().mean()
                mb_advantages = b_advantages[mb]
                if args.norm_adv:
                    mb_advantages = mb_advantages - mb_advantages.mean()
                    mb_advantages = mb_advantages / (mb_advantages.std() + 1e-8)
                if args.loss == "clip":  # the policy objective: PPO-Clip, or PPO-KL
                    pg_loss = clip_policy_loss(ratio, mb_advantages, args.clip_coef)
                else:
                    kl = kl_divergence(old_agent.dist(b_obs[mb]), new_dist)
                    pg_loss = kl_penalty_policy_loss(ratio, mb_advantages, kl, kl_beta)
                new_values = agent.value(b_obs[mb])
                v_loss = value_loss(
                    new_values, b_values[mb], b_returns[mb], args.clip_coef, args.clip_vloss
                )
                entropy_loss = new_dist.entropy().mean()
                loss = pg_loss - args.ent_coef * entropy_loss + args.vf_coef * v_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()
            if args.target_kl is not None and approx_kl.item() > args.target_kl:
                break

        if args.loss == "kl":  # adapt beta to d = E_t[KL(pi_old || pi)] of the update
            with torch.no_grad():
                update_kl = kl_divergence(old_agent.dist(b_obs), agent.dist(b_obs)).mean().item()
            kl_beta = adapt_kl_beta(kl_beta, update_kl, args.kl_target)

        # --- logging ---
        sps = int((global_step - start_step) / (time.time() - start_time))
        mean_return = round(float(np.mean(recent_returns)), 2) if recent_returns else None
        if iteration % 10 == 0 or iteration == num_iterations:
            print(f"global_step={global_step}, SPS={sps}, mean_return_last10={mean_return}")
        if args.track:
            metrics = {
                "global_step": global_step,
                "charts/learning_rate": optimizer.param_groups[0]["lr"],
                "charts/SPS": sps,
                "losses/value_loss": v_loss.item(),
                "losses/policy_loss": pg_loss.item(),
                "losses/entropy": entropy_loss.item(),
                "losses/explained_variance": explained_variance(values, returns),
                "losses/approx_kl": approx_kl.item(),
                "losses/clipfrac": clipfrac.item(),
            }
            if args.loss == "kl":
                metrics["losses/kl_beta"] = kl_beta
            wandb.log(metrics)

        # --- checkpoint: every --save-every env steps and at the end; when stopped, now ---
        last = iteration == num_iterations
        save_now = args.save_every > 0 and (global_step % args.save_every < batch_size or last)
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
