"""PPO: proximal policy optimization (Schulman et al. 2017), discrete and continuous actions.

What this chapter adds to actor_critic.py: each rollout is reused for several epochs of
minibatch updates. The policy gradient is weighted by the importance ratio
pi(a|s) / pi_old(a|s), and the new policy is kept close to the one that collected the data,
either by clipping the ratio (PPO-Clip, `--loss clip`) or by a KL penalty with an adaptive
coefficient (PPO-KL, `--loss kl`).

    python ppo.py --env-id CartPole-v1
    python ppo.py --env-id Pendulum-v1 --total-timesteps 500000 --num-envs 4 --num-steps 512 \
        --gamma 0.9 --learning-rate 1e-3 --update-epochs 10 --num-minibatches 8 --ent-coef 0
"""

import importlib.util
import json
import math
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
    exp_name: str = "ppo"
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
    """if toggled, save weights, normalization statistics and args to `runs/{run_name}/ppo.pt`"""
    eval_checkpoint: Optional[str] = None
    """path of a saved model: evaluate it for `--eval-episodes` episodes instead of training"""
    eval_episodes: int = 10
    """number of episodes for the evaluation of a saved model"""

    # Algorithm specific arguments
    env_id: str = "CartPole-v1"
    """the id of the gymnasium environment"""
    total_timesteps: int = 100_000
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
    """if toggled, normalize advantages within each minibatch"""
    loss: Literal["clip", "kl"] = "clip"
    """the policy objective: `clip` (PPO-Clip) or `kl` (PPO with adaptive KL penalty)"""
    clip_coef: float = 0.2
    """the ratio clipping epsilon of PPO-Clip (also the value clipping range)"""
    kl_target: float = 0.01
    """`--loss kl`: the KL target d_targ of the adaptive beta rule"""
    kl_beta: float = 1.0
    """`--loss kl`: the initial KL penalty coefficient beta"""
    clip_vloss: bool = True
    """if toggled, use the clipped value loss"""
    ent_coef: float = 0.01
    """the coefficient of the entropy bonus"""
    vf_coef: float = 0.5
    """the coefficient of the value loss"""
    max_grad_norm: float = 0.5
    """the maximum norm for gradient clipping"""
    target_kl: Optional[float] = None
    """stop the epochs of an update early once the approximate KL exceeds this; None: never"""


LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)  # log sqrt(2 pi), in the Gaussian log-density


class UsageError(ValueError):
    """A setting the script cannot run with; raised before training, printed as one line."""


# --- environments: gymnasium 1.x vector env with SAME_STEP autoreset ---
# With SAME_STEP, a sub-env that terminates or truncates is reset inside the same step():
# the returned obs is already the first obs of the next episode, and the true last obs
# of the finished episode is in info["final_obs"]. Every transition returned is real;
# none crosses an episode boundary, so nothing has to be masked out afterwards.
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


def true_next_obs(obs: np.ndarray, done: np.ndarray, info: dict) -> np.ndarray:
    """s_{t+1} of each env's transition: the returned obs, except where the episode ended,
    where the returned obs already belongs to the next episode and s_{t+1} is info["final_obs"]."""
    if not done.any():
        return obs
    next_obs = obs.copy()
    for i in np.flatnonzero(done):
        next_obs[i] = info["final_obs"][i]
    return next_obs


def check_args(args: Args):
    """Refuse settings that cannot work, each with one line that says what to do."""
    for name in ["total_timesteps", "num_envs", "num_steps", "num_minibatches", "update_epochs", "eval_episodes"]:
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    batch_size = args.num_envs * args.num_steps
    if batch_size % args.num_minibatches != 0:
        raise UsageError(
            f"the batch (--num-envs x --num-steps = {batch_size}) must divide into --num-minibatches "
            f"({args.num_minibatches}) equal minibatches"
        )
    if args.total_timesteps < batch_size:
        raise UsageError(f"--total-timesteps ({args.total_timesteps}) is smaller than one rollout ({batch_size} steps)")
    if args.eval_checkpoint is not None and not os.path.isfile(args.eval_checkpoint):
        raise UsageError(f"--eval-checkpoint {args.eval_checkpoint}: no such file (train with --save-model first)")
    if args.env_id not in gym.registry:
        raise UsageError(f"unknown env id '{args.env_id}'; registered ids look like CartPole-v1, Acrobot-v1, Pendulum-v1")
    if args.capture_video and importlib.util.find_spec("moviepy") is None:
        raise UsageError("--capture-video needs moviepy: pip install moviepy")
    if args.cuda and not torch.cuda.is_available():
        raise UsageError("--cuda was given but torch sees no CUDA device; drop --cuda")


def check_spaces(env_id: str, observation_space: gym.Space, action_space: gym.Space):
    if not (isinstance(observation_space, gym.spaces.Box) and len(observation_space.shape) == 1):
        raise UsageError(
            f"ppo.py's MLP needs a flat Box observation space; {env_id} has {observation_space} "
            "(wrap it in gymnasium.wrappers.FlattenObservation)"
        )
    if not isinstance(action_space, (gym.spaces.Discrete, gym.spaces.Box)) or (
        isinstance(action_space, gym.spaces.Box) and len(action_space.shape) != 1
    ):
        raise UsageError(f"ppo.py handles Discrete and 1-D Box action spaces; {env_id} has {action_space}")


# --- normalization of observations and rewards (continuous control) ---
class RunningMeanStd:
    """Running mean and variance of a stream of batches (Chan et al.'s parallel update)."""

    def __init__(self, shape=()):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4

    def update(self, x: np.ndarray):
        batch_mean, batch_var, batch_count = x.mean(0), x.var(0), x.shape[0]
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        self.var = m2 / total
        self.count = total

    def normalize(self, x: np.ndarray) -> np.ndarray:
        return np.clip((x - self.mean) / np.sqrt(self.var + 1e-8), -10.0, 10.0).astype(np.float32)


# --- networks: separate actor and critic MLPs ---
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
    """Critic V(s) and actor pi(a|s): Categorical for Discrete actions, diagonal Gaussian
    with a state-independent log-std for Box actions."""

    def __init__(self, obs_dim: int, action_space: gym.Space):
        super().__init__()
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        action_dim = int(action_space.n) if self.discrete else action_space.shape[0]
        self.critic = mlp(obs_dim, 1, out_std=1.0)
        self.actor = mlp(obs_dim, action_dim, out_std=0.01)  # logits, or the Gaussian mean
        if not self.discrete:
            self.actor_logstd = nn.Parameter(torch.zeros(action_dim))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def dist_params(self, obs: torch.Tensor) -> torch.Tensor:
        """What pi(.|s) is built from: the logits, or the Gaussian mean and log-std side by side."""
        out = self.actor(obs)
        if self.discrete:
            return out
        return torch.cat([out, self.actor_logstd.expand_as(out)], dim=-1)

    # The formulas below are what torch.distributions computes (tests check them against it);
    # written out, the update's backward pass has a third fewer ops to go through.
    def log_prob_entropy(self, params: torch.Tensor, actions: torch.Tensor):
        """log pi(a|s) of the given actions, and the entropy H(pi(.|s)), per state."""
        if self.discrete:
            logp = params.log_softmax(-1)  # log p(a) = logit_a - log sum_b exp(logit_b)
            entropy = -(logp.exp() * logp).sum(-1)  # H = -sum_a p(a) log p(a)
            return logp.gather(-1, actions.unsqueeze(-1)).squeeze(-1), entropy
        mean, logstd = params.chunk(2, dim=-1)
        # log N(a; mu, sigma^2) = -(a - mu)^2 / (2 sigma^2) - log sigma - log(2 pi)/2, summed over action dims
        log_prob = (-0.5 * ((actions - mean) / logstd.exp()) ** 2 - logstd - LOG_SQRT_2PI).sum(-1)
        entropy = (logstd + 0.5 + LOG_SQRT_2PI).sum(-1)  # H = log sigma + (1 + log 2 pi)/2 per dim
        return log_prob, entropy

    def kl(self, old_params: torch.Tensor, new_params: torch.Tensor) -> torch.Tensor:
        """The exact KL(pi_old(.|s) || pi(.|s)) per state."""
        if self.discrete:
            old_logp, new_logp = old_params.log_softmax(-1), new_params.log_softmax(-1)
            return (old_logp.exp() * (old_logp - new_logp)).sum(-1)  # sum_a p_old(a) (log p_old(a) - log p(a))
        (mean0, logstd0), (mean1, logstd1) = old_params.chunk(2, dim=-1), new_params.chunk(2, dim=-1)
        # per dim: log(sigma1/sigma0) + (sigma0^2 + (mu0 - mu1)^2) / (2 sigma1^2) - 1/2
        return (logstd1 - logstd0 + ((2 * logstd0).exp() + (mean0 - mean1) ** 2) / (2 * (2 * logstd1).exp()) - 0.5).sum(-1)

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        """The most likely action, for evaluation."""
        out = self.actor(obs)
        return out.argmax(-1) if self.discrete else out


# --- acting in the rollout: a numpy copy of the actor ---
class NumpyPolicy:
    """Samples a ~ pi(.|s) with a numpy copy of the actor's weights, for the rollout only.

    The rollout asks for num_envs actions at a time, one env step after another. For batches
    that small torch spends most of its time dispatching ops: the same forward pass and
    sample take about 15 us in numpy and 85-125 us in torch (CartPole, 4 envs, measured), and
    the rollout makes one call per env step. The copy is taken before each rollout, while
    the policy is fixed, and the update recomputes log pi_old(a|s) with torch from the stored
    actions, so PPO's ratio is exact.
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


# --- the math: advantages and losses ---
def gae(rewards, values, next_values, dones, gamma: float, lam: float) -> np.ndarray:
    """Generalized advantage estimation over a (T, N) rollout of numpy arrays.

    delta_t = r_t + gamma*V(s_{t+1}) - V(s_t)        (V(s_{t+1}) = 0 if the episode terminated)
    A_t     = delta_t + gamma*lam*(1 - done_t)*A_{t+1}  (done_t: the episode ended at t, either way)

    `next_values[t]` is V of the true next state of transition t: the final observation
    when the episode was truncated (bootstrap), zero when it terminated. `dones` only cuts
    the recursion, so a truncated episode keeps its bootstrap but shares no advantage with
    the next episode.
    """
    # numpy, not torch: this Python loop over T rows is several times cheaper on numpy arrays
    advantages = np.zeros_like(rewards)
    last = np.zeros_like(rewards[0])
    not_done = 1.0 - dones
    deltas = rewards + gamma * next_values - values
    for t in reversed(range(rewards.shape[0])):
        last = deltas[t] + gamma * lam * not_done[t] * last
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
    """The PPO paper's rule: d = mean KL of the update; d > 1.5*d_targ: beta*2, d < d_targ/1.5: beta/2."""
    if kl > 1.5 * kl_target:
        return beta * 2.0
    if kl < kl_target / 1.5:
        return beta / 2.0
    return beta


def value_loss(new_values, old_values, returns, clip_coef: float, clip_vloss: bool):
    """0.5*E[(V - R)^2], or with clipping 0.5*E[max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2)]"""
    unclipped = (new_values - returns) ** 2
    if not clip_vloss:
        return 0.5 * unclipped.mean()
    v_clipped = old_values + torch.clamp(new_values - old_values, -clip_coef, clip_coef)
    return 0.5 * torch.max(unclipped, (v_clipped - returns) ** 2).mean()


# --- the optimizer's view: every parameter in one flat tensor; gradient clipping ---
def flatten_parameters(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Move all of `module`'s parameters into one flat tensor and all their gradients into another.

    Every parameter keeps its shape and stays an nn.Parameter, now a view into the flat
    tensor; its .grad is a view into the flat gradient, which backward() adds into in place.
    Adam and the gradient clipping then see one tensor per minibatch step instead of 12 or
    13: a minibatch step at CleanRL's sizes takes 1.02 ms instead of 1.14 (measured).
    Zero the flat gradient with .zero_(); setting gradients to None would cut the views.
    """
    params = list(module.parameters())
    flat_params = torch.cat([p.detach().flatten() for p in params])
    flat_grads = torch.zeros_like(flat_params)
    offset = 0
    for p in params:
        n = p.numel()
        p.data = flat_params[offset : offset + n].view_as(p)
        p.grad = flat_grads[offset : offset + n].view_as(p)
        offset += n
    flat_params.grad = flat_grads  # what the optimizer reads
    return flat_params, flat_grads


def clip_grad_norm(grads: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Scale the flat gradient in place so that its L2 norm is at most max_norm:
    g <- g * min(1, max_norm / ||g||). What nn.utils.clip_grad_norm_ computes, on one tensor."""
    norm = grads.norm()
    grads.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))
    return norm


def explained_variance(values: np.ndarray, returns: np.ndarray) -> float:
    """1 - Var(R - V) / Var(R): 1 is a perfect critic, 0 no better than a constant."""
    var_returns = returns.var()
    return float("nan") if var_returns == 0 else float(1 - (returns - values).var() / var_returns)


# --- save and evaluate ---
def save_checkpoint(path: str, agent: Agent, obs_rms: Optional[RunningMeanStd], args: Args):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    stats = None if obs_rms is None else {"mean": obs_rms.mean, "var": obs_rms.var, "count": obs_rms.count}
    torch.save({"model": agent.state_dict(), "obs_rms": stats, "args": asdict(args)}, path)


def evaluate(path: str, eval_episodes: int = 10, seed: int = 0, capture_video: bool = False) -> list:
    """Run `eval_episodes` episodes with the saved policy's most likely action; returns their returns."""
    checkpoint = torch.load(path, weights_only=False)
    saved = Args(**checkpoint["args"])
    env = make_env(saved.env_id, 0, capture_video, f"{saved.exp_name}-eval")()
    agent = Agent(env.observation_space.shape[0], env.action_space)
    agent.load_state_dict(checkpoint["model"])
    obs_rms = None
    if checkpoint["obs_rms"] is not None:  # the statistics are frozen at their saved values
        obs_rms = RunningMeanStd()
        obs_rms.mean, obs_rms.var, obs_rms.count = (checkpoint["obs_rms"][k] for k in ("mean", "var", "count"))
    returns = []
    for episode in range(eval_episodes):
        obs, _ = env.reset(seed=seed + episode)
        done, episodic_return = False, 0.0
        while not done:
            x = obs_rms.normalize(obs) if obs_rms is not None else obs.astype(np.float32)
            with torch.no_grad():
                action = agent.mode(torch.as_tensor(x)).numpy()
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

    batch_size = args.num_envs * args.num_steps
    minibatch_size = batch_size // args.num_minibatches
    num_iterations = args.total_timesteps // batch_size
    run_name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"

    try:
        envs = make_envs(args.env_id, args.num_envs, args.capture_video, run_name)
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
    rng = np.random.default_rng(args.seed)  # the rollout's action sampling
    torch.backends.cudnn.deterministic = args.torch_deterministic
    # Networks this small run faster on one thread than with the thread pool's overhead.
    torch.set_num_threads(1)
    device = torch.device("cuda" if args.cuda else "cpu")

    obs_dim = envs.single_observation_space.shape[0]
    agent = Agent(obs_dim, envs.single_action_space).to(device)
    flat_params, flat_grads = flatten_parameters(agent)
    optimizer = torch.optim.Adam([flat_params], lr=args.learning_rate, eps=1e-5, fused=True)  # fused: one kernel
    kl_beta = args.kl_beta

    # Continuous control: observations normalized by running statistics, rewards scaled by
    # the running std of the discounted return (both saved with the model).
    obs_rms = RunningMeanStd(obs_dim) if continuous else None
    return_rms = RunningMeanStd() if continuous else None
    discounted_return = np.zeros(args.num_envs)

    def prepare(raw_obs: np.ndarray) -> np.ndarray:
        return obs_rms.normalize(raw_obs) if continuous else raw_obs.astype(np.float32)

    # Rollout storage, shaped (num_steps, num_envs, ...). next_obs[t] is the true s_{t+1}
    # of transition t: the final observation when the episode ended at t.
    action_shape = envs.single_action_space.shape
    obs_buf = np.zeros((args.num_steps, args.num_envs, obs_dim), np.float32)
    next_obs_buf = np.zeros((args.num_steps, args.num_envs, obs_dim), np.float32)
    actions_buf = np.zeros((args.num_steps, args.num_envs) + action_shape, np.float32 if continuous else np.int64)
    rewards_buf = np.zeros((args.num_steps, args.num_envs), np.float32)
    terminated_buf = np.zeros((args.num_steps, args.num_envs), np.float32)
    dones_buf = np.zeros((args.num_steps, args.num_envs), np.float32)

    episode_returns = np.zeros(args.num_envs)
    episode_lengths = np.zeros(args.num_envs, np.int64)
    recent_returns = deque(maxlen=10)
    global_step = 0
    start_time = time.time()
    raw_obs, _ = envs.reset(seed=args.seed)
    envs.action_space.seed(args.seed)
    if continuous:
        obs_rms.update(raw_obs)
    obs = prepare(raw_obs)

    for iteration in range(1, num_iterations + 1):
        if args.anneal_lr:  # lr_k = lr * (1 - (k-1)/K)
            optimizer.param_groups[0]["lr"] = args.learning_rate * (1.0 - (iteration - 1.0) / num_iterations)

        # --- rollout: num_steps steps of num_envs envs with the current policy ---
        policy = NumpyPolicy(agent, rng)
        for step in range(args.num_steps):
            global_step += args.num_envs
            obs_buf[step] = obs
            action = policy.sample(obs)
            actions_buf[step] = action
            if continuous:  # the Gaussian sample is stored; only the env sees it clipped
                action = np.clip(action, envs.single_action_space.low, envs.single_action_space.high)
            raw_obs, reward, terminated, truncated, info = envs.step(action)
            done = terminated | truncated

            raw_next_obs = true_next_obs(raw_obs, done, info)
            if continuous:
                obs_rms.update(raw_obs)
                discounted_return = discounted_return * args.gamma + reward
                return_rms.update(discounted_return)
                discounted_return[done] = 0.0
                next_obs_buf[step] = prepare(raw_next_obs)
                rewards_buf[step] = np.clip(reward / np.sqrt(return_rms.var + 1e-8), -10.0, 10.0)
            else:
                next_obs_buf[step] = raw_next_obs
                rewards_buf[step] = reward
            terminated_buf[step] = terminated
            dones_buf[step] = done
            obs = prepare(raw_obs)

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
                episode_returns[i], episode_lengths[i] = 0.0, 0

        # --- values and old log-probs: one batched pass over the rollout ---
        # The policy did not change during the rollout, so these equal what per-step
        # evaluation would have given, at a fraction of the cost.
        b_obs = torch.from_numpy(obs_buf).to(device).reshape(batch_size, obs_dim)
        b_actions = torch.from_numpy(actions_buf).to(device).reshape((batch_size,) + action_shape)
        with torch.no_grad():
            values = agent.value(b_obs).reshape(args.num_steps, args.num_envs).cpu().numpy()
            next_values = agent.value(torch.from_numpy(next_obs_buf).to(device)).cpu().numpy()
            b_old_params = agent.dist_params(b_obs)
            b_logprobs, _ = agent.log_prob_entropy(b_old_params, b_actions)
        next_values = next_values * (1.0 - terminated_buf)  # V(s_{t+1}) = 0 after termination

        # --- advantage: GAE(lambda); value target R_t = A_t + V(s_t) ---
        advantages = gae(rewards_buf, values, next_values, dones_buf, args.gamma, args.gae_lambda)
        returns = advantages + values
        b_advantages, b_returns, b_values = (
            torch.from_numpy(x.reshape(-1)).to(device) for x in (advantages, returns, values)
        )

        # --- update: update_epochs passes of minibatch gradient steps on the same rollout ---
        ratios = []  # of every minibatch, for the clip fraction
        for epoch in range(args.update_epochs):
            for mb in torch.randperm(batch_size, device=device).split(minibatch_size):
                mb_obs = b_obs[mb]
                new_params = agent.dist_params(mb_obs)
                new_logprob, entropy = agent.log_prob_entropy(new_params, b_actions[mb])
                logratio = new_logprob - b_logprobs[mb]
                ratio = logratio.exp()  # pi(a|s) / pi_old(a|s)
                ratios.append(ratio.detach())

                mb_advantages = b_advantages[mb]
                if args.norm_adv:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)

                # --- policy objective: PPO-Clip or PPO-KL-penalty ---
                if args.loss == "clip":
                    pg_loss = clip_policy_loss(ratio, mb_advantages, args.clip_coef)
                else:
                    kl = agent.kl(b_old_params[mb], new_params)
                    pg_loss = kl_penalty_policy_loss(ratio, mb_advantages, kl, kl_beta)

                v_loss = value_loss(agent.value(mb_obs), b_values[mb], b_returns[mb], args.clip_coef, args.clip_vloss)
                entropy_loss = entropy.mean()
                loss = pg_loss - args.ent_coef * entropy_loss + args.vf_coef * v_loss

                flat_grads.zero_()
                loss.backward()
                clip_grad_norm(flat_grads, args.max_grad_norm)
                optimizer.step()

            # --- how far the epoch's last minibatch had moved pi before its step (as CleanRL logs it) ---
            with torch.no_grad():
                old_approx_kl = (-logratio).mean()
                approx_kl = ((ratio - 1) - logratio).mean()  # k3 estimator of KL(pi_old || pi)
            if args.target_kl is not None and approx_kl.item() > args.target_kl:
                break

        if args.loss == "kl":  # adapt beta to how far this whole update moved the policy
            with torch.no_grad():  # d = E_t[KL(pi_old(.|s_t) || pi(.|s_t))] of the updated policy
                update_kl = agent.kl(b_old_params, agent.dist_params(b_obs)).mean().item()
            kl_beta = adapt_kl_beta(kl_beta, update_kl, args.kl_target)

        # --- logging ---
        sps = int(global_step / (time.time() - start_time))
        if iteration % 10 == 0 or iteration == num_iterations:
            mean_return = float(np.mean(recent_returns)) if recent_returns else float("nan")
            print(f"global_step={global_step}, SPS={sps}, mean_return_last10={mean_return:.2f}, approx_kl={approx_kl.item():.4f}")
        if args.track:
            metrics = {
                "global_step": global_step,
                "charts/learning_rate": optimizer.param_groups[0]["lr"],
                "losses/value_loss": v_loss.item(),
                "losses/policy_loss": pg_loss.item(),
                "losses/entropy": entropy_loss.item(),
                "losses/old_approx_kl": old_approx_kl.item(),
                "losses/approx_kl": approx_kl.item(),
                "losses/clipfrac": ((torch.cat(ratios) - 1.0).abs() > args.clip_coef).float().mean().item(),
                "losses/explained_variance": explained_variance(values, returns),
                "charts/SPS": sps,
            }
            if args.loss == "kl":
                metrics["losses/kl_beta"] = kl_beta
            wandb.log(metrics)

    envs.close()
    result = {
        "env_id": args.env_id,
        "global_step": global_step,
        "mean_return_last10": float(np.mean(recent_returns)) if recent_returns else float("nan"),
        "sps": int(global_step / (time.time() - start_time)),
        "wall_seconds": round(time.time() - start_time, 2),
    }
    if args.save_model:
        model_path = f"runs/{run_name}/{args.exp_name}.pt"
        save_checkpoint(model_path, agent.cpu(), obs_rms, args)
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
        raise SystemExit(f"ppo.py: error: {e}")
