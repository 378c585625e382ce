"""PPO: proximal policy optimization (Schulman et al. 2017), discrete and continuous actions.

What it adds to actor_critic.py: epochs of minibatch steps per rollout, weighted
by the ratio pi(a|s)/pi_old(a|s), kept near 1 by a clip (`--loss clip`) or a KL penalty (`kl`).

    python ppo.py --env-id CartPole-v1
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
from gymnasium.wrappers.vector import ClipAction, RecordEpisodeStatistics
from torch.distributions import Categorical, Distribution, Independent, Normal, kl_divergence


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment (part of the run name)"""
    seed: int = 1
    """seed of the experiment (torch and the environments)"""
    cuda: bool = False
    """if toggled, run the networks on the GPU"""
    track: bool = False
    """if toggled, log to Weights & Biases (WANDB_MODE=offline works)"""
    wandb_project_name: str = "rlref"
    """the wandb project (the team: WANDB_ENTITY)"""
    capture_video: bool = False
    """if toggled, record videos of env 0 to `videos/` (needs moviepy)"""
    save_model: bool = False
    """if toggled, save the model to `runs/` and evaluate it"""
    save_every: int = 0
    """save a checkpoint every this many env steps too (0: never)"""
    resume: str | None = None
    """a checkpoint to continue; its settings: the flags' defaults"""
    eval_checkpoint: str | None = None
    """a saved model to evaluate instead of training"""
    eval_episodes: int = 10
    """the number of episodes of that evaluation"""

    env_id: str = "CartPole-v1"
    """the id of the gymnasium environment"""
    total_timesteps: int = 149_760
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
    """the number of minibatches of each rollout"""
    update_epochs: int = 4
    """the number of passes over each rollout"""
    norm_adv: bool = True
    """if toggled, normalize the advantages of each update's batch"""
    shared_trunk: bool = False
    """if toggled, the critic shares the actor's layers but the last"""
    loss: Literal["clip", "kl"] = "clip"
    """the policy objective: `clip` (PPO-Clip) or `kl` (adaptive KL penalty)"""
    clip_coef: float = 0.2
    """PPO-Clip's epsilon (also the value clipping range)"""
    kl_target: float = 0.01
    """`--loss kl`: the KL target d_targ of beta's rule"""
    clip_vloss: bool = True
    """if toggled, use the clipped value loss"""
    ent_coef: float = 0.01
    """the coefficient of the entropy bonus"""
    vf_coef: float = 0.5
    """the coefficient of the value loss"""
    max_grad_norm: float = 0.5
    """the maximum norm for gradient clipping"""
    target_kl: float | None = None
    """stop an update once approx KL exceeds this (None: never)"""


class UsageError(ValueError):
    """A setting the script cannot run with, printed as one line."""


STOP = []  # the signal asking the run to stop (`ask_to_stop`)


# --- environments: gymnasium 1.x vector env with SAME_STEP autoreset ---
# An ended episode resets within step(); its last obs is info["final_obs"].
def make_envs(env_id, num_envs, capture_video=False, run_name="", last=10):
    thunks = [lambda: gym.make(env_id)] * num_envs
    if capture_video:  # record env 0's episodes
        video = f"videos/{run_name}"
        thunks[0] = lambda: RecordVideo(gym.make(env_id, render_mode="rgb_array"), video)
    try:
        envs = gym.vector.SyncVectorEnv(thunks, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    except gym.error.Error as e:  # an unknown id, a missing package
        raise UsageError(f"{env_id}: {e}") from None
    obs_space = envs.single_observation_space
    action_space = envs.single_action_space
    if not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1):
        raise UsageError(f"the MLP needs a flat Box observation; {env_id} has {obs_space}")
    if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        envs = ClipAction(envs)  # the env gets a ~ pi clipped to its bounds
    elif not isinstance(action_space, gym.spaces.Discrete):
        raise UsageError(f"actions must be Discrete or 1-D Box; {env_id} has {action_space}")
    # info["episode"] at an episode's end; return_queue: the `last` returns
    return RecordEpisodeStatistics(envs, buffer_length=last)


def true_next_obs(obs, done, info):
    """s_{t+1}: info["final_obs"] where an episode ended, else the obs returned"""
    next_obs = obs.copy()
    if done.any():  # final_obs holds None for the other envs
        next_obs[done] = np.stack(info["final_obs"][done])
    return next_obs


# --- normalization of observations and rewards (continuous control) ---
def update_rms(rms, x):  # rms.update(x), faster for one env
    rms.update_from_moments(x.mean(0), x.var(0) if len(x) > 1 else 0, len(x))


class Normalizer:
    """Continuous control (`enabled`): obs scaled by their running mean and std,
    rewards by the running std of the discounted return. Else obs become float32."""

    def __init__(self, obs_dim, num_envs, gamma, enabled):
        self.enabled = enabled
        self.gamma = gamma
        self.discounted_return = np.zeros(num_envs)
        self.obs_rms = RunningMeanStd(shape=(obs_dim,))
        self.return_rms = RunningMeanStd()

    def obs(self, raw_obs, update=False):
        if not self.enabled:
            return raw_obs.astype(np.float32)
        if update:
            update_rms(self.obs_rms, raw_obs)
        obs = (raw_obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + 1e-8)
        return np.clip(obs, -10.0, 10.0).astype(np.float32)

    def step(self, raw_obs, raw_next_obs, reward, done):
        """One env step: update the statistics; return obs, next_obs, reward"""
        obs = self.obs(raw_obs, update=True)
        if self.enabled:
            self.discounted_return = self.discounted_return * self.gamma + reward
            update_rms(self.return_rms, self.discounted_return)
            self.discounted_return[done] = 0.0
            reward = np.clip(reward / np.sqrt(self.return_rms.var + 1e-8), -10.0, 10.0)
        return obs, self.obs(raw_next_obs), reward

    def state_dict(self):
        """The statistics (mean, var, count) as tensors"""
        rms = {"obs_rms": self.obs_rms, "return_rms": self.return_rms}
        return {n: {k: torch.tensor(v) for k, v in vars(r).items()} for n, r in rms.items()}

    def load_state_dict(self, state):
        for name, values in state.items():
            vars(getattr(self, name)).update({k: v.numpy() for k, v in values.items()})


# --- networks: the actor pi(a|s) and the critic V(s) ---
def layer_init(layer, std=np.sqrt(2), bias_const=0.0):
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias_const)
    return layer


def mlp(in_dim, out_dim, out_std, hidden=64):
    return nn.Sequential(
        layer_init(nn.Linear(in_dim, hidden)),
        nn.Tanh(),
        layer_init(nn.Linear(hidden, hidden)),
        nn.Tanh(),
        layer_init(nn.Linear(hidden, out_dim), std=out_std),
    )


class Agent(nn.Module):
    """Actor pi(a|s): Categorical for Discrete actions; for Box actions, a diagonal
    Gaussian, its log-std state-independent (its log_prob sums over the dims).
    Critic V(s): an MLP of its own, or (`shared_trunk`) the actor's but its head."""

    def __init__(self, obs_dim, action_space, shared_trunk=False):
        super().__init__()
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        action_dim = int(action_space.n) if self.discrete else action_space.shape[0]
        self.actor = mlp(obs_dim, action_dim, out_std=0.01)  # logits, or Gaussian mean
        if shared_trunk:  # the same layer objects (parameters), a head of its own
            head = layer_init(nn.Linear(self.actor[-1].in_features, 1), std=1.0)
            self.critic = nn.Sequential(*self.actor[:-1], head)
        else:
            self.critic = mlp(obs_dim, 1, out_std=1.0)
        if not self.discrete:
            self.actor_logstd = nn.Parameter(torch.zeros(action_dim))

    def value(self, obs):
        return self.critic(obs).squeeze(-1)

    def dist(self, obs):
        """The distribution pi(.|s)."""
        out = self.actor(obs)
        if self.discrete:
            return Categorical(logits=out)
        std = self.actor_logstd.exp().expand_as(out)
        return Independent(Normal(out, std), 1)


# --- the math: advantages and losses ---
def gae(rewards, values, next_values, dones, gamma, lam):
    """Generalized advantage estimation over a (T, N) rollout of numpy arrays.

    delta_t = r_t + gamma*V(s_{t+1}) - V(s_t)       (V(s_{t+1}) = 0 after a termination)
    A_t = delta_t + gamma*lam*(1 - done_t)*A_{t+1}  (done_t: an episode ended)

    A truncated episode keeps its bootstrap V(final obs) but no advantage of the next.
    """
    advantages = np.zeros_like(rewards)
    deltas = rewards + gamma * next_values - values
    last = 0.0
    for t in reversed(range(len(rewards))):
        last = deltas[t] + gamma * lam * (1.0 - dones[t]) * last
        advantages[t] = last
    return advantages


def clip_policy_loss(ratio, advantages, clip_coef):
    """PPO-Clip: L = -E[ min(ratio*A, clip(ratio, 1-eps, 1+eps)*A) ]"""
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef) * advantages
    return -torch.min(unclipped, clipped).mean()


def kl_penalty_policy_loss(ratio, advantages, kl, beta):
    """PPO-KL: L = -E[ ratio*A - beta*KL(pi_old(.|s) || pi(.|s)) ]"""
    return -(ratio * advantages - beta * kl).mean()


def adapt_kl_beta(beta, kl, kl_target):
    """The PPO paper's rule, d the update's mean KL:
    beta*2 if d > 1.5*d_targ; beta/2 if d < d_targ/1.5; else unchanged."""
    if kl > 1.5 * kl_target:
        return beta * 2.0
    return beta / 2.0 if kl < kl_target / 1.5 else beta


def value_loss(values, returns):
    """0.5*E[(V(s_t) - R_t)^2]: V regresses on the GAE return R_t = A_t + V(s_t)"""
    return 0.5 * ((values - returns) ** 2).mean()


def clipped_value_loss(new_values, old_values, returns, clip_coef):
    """0.5*E[max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2)]"""
    v_clipped = old_values + torch.clamp(new_values - old_values, -clip_coef, clip_coef)
    return 0.5 * torch.max((new_values - returns) ** 2, (v_clipped - returns) ** 2).mean()


def explained_variance(values, returns):
    """1 - Var(R - V) / Var(R): 1 for a perfect critic, 0 for a constant"""
    if returns.var() == 0:
        return float("nan")
    return float(1 - (returns - values).var() / returns.var())


def main(args: Args) -> dict:
    checkpoint = load_checkpoint(args.resume) if args.resume else {}
    check_args(args, checkpoint)
    if args.eval_checkpoint:  # evaluate a saved model instead of training
        return evaluate(args.eval_checkpoint, args.eval_episodes, args.seed, args.capture_video)
    run_name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    run_name = checkpoint.get("run_name", run_name)
    path = args.resume or f"runs/{run_name}/{args.exp_name}.pt"
    envs = make_envs(args.env_id, args.num_envs, args.capture_video, run_name)
    wandb = start_wandb(args, run_name, checkpoint) if args.track else None

    # --- seeding: torch (weights, sampled actions), the envs ---
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # small networks (benchmarks/README.md)
    # skip the per-step argument checks (speed)
    Distribution.set_default_validate_args(False)
    device = torch.device("cuda" if args.cuda else "cpu")
    obs_dim = envs.single_observation_space.shape[0]
    action_space = envs.single_action_space
    agent = Agent(obs_dim, action_space, args.shared_trunk).to(device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5, foreach=True)
    normalizer = Normalizer(obs_dim, args.num_envs, args.gamma, not agent.discrete)
    kl_beta = checkpoint.get("kl_beta", 1.0)  # PPO-KL's beta
    global_step = checkpoint.get("global_step", 0)
    if checkpoint:  # continue the saved run; the envs start anew
        load_model(agent, checkpoint["model"], path)
        optimizer.load_state_dict(checkpoint["optimizer"])
        normalizer.load_state_dict(checkpoint["normalizer"])
        torch.set_rng_state(checkpoint["torch_rng"])
        print(f"resuming {run_name} at global_step={global_step}")

    # Rollout storage, (num_steps, num_envs, ...); next_obs_buf[t]: s_{t+1}
    rollout_shape = (args.num_steps, args.num_envs)
    obs_buf = np.zeros((*rollout_shape, obs_dim), np.float32)
    next_obs_buf = np.zeros((*rollout_shape, obs_dim), np.float32)
    actions_buf = np.zeros(rollout_shape + action_space.shape, action_space.dtype)
    rewards_buf = np.zeros(rollout_shape, np.float32)
    terminated_buf = np.zeros(rollout_shape, np.float32)
    dones_buf = np.zeros(rollout_shape, np.float32)
    recent_returns = deque(maxlen=10)  # the last 10 learned from
    start_step, start_time = global_step, time.time()
    obs, _ = envs.reset(seed=args.seed + global_step)
    obs = normalizer.obs(obs, update=True)
    STOP.clear()
    while global_step < args.total_timesteps and not STOP:
        previous_step = global_step
        if args.anneal_lr:  # lr_t = lr * (1 - t/T), t: env steps
            for group in optimizer.param_groups:
                group["lr"] = args.learning_rate * (1 - global_step / args.total_timesteps)

        # --- rollout: num_steps steps of num_envs envs with the policy ---
        for step in range(args.num_steps):
            global_step += args.num_envs
            with torch.no_grad():  # a ~ pi(.|s); acting needs no gradient
                action = agent.dist(torch.as_tensor(obs, device=device)).sample()
            obs_buf[step] = obs
            actions_buf[step] = action.cpu().numpy()
            raw_obs, reward, terminated, truncated, info = envs.step(actions_buf[step])
            done = terminated | truncated
            next_obs = true_next_obs(raw_obs, done, info)
            obs, next_obs_buf[step], rewards_buf[step] = normalizer.step(
                raw_obs, next_obs, reward, done
            )
            terminated_buf[step] = terminated
            dones_buf[step] = done
            for i in np.flatnonzero(done):  # an episode ended: its raw return
                recent_returns.append(info["episode"]["r"][i])
                log_episode(wandb, global_step, info["episode"]["r"][i])

        # --- values: one batched pass over the rollout ---
        b_obs = torch.as_tensor(obs_buf, device=device).flatten(0, 1)
        b_actions = torch.as_tensor(actions_buf, device=device).flatten(0, 1)
        b_next_obs = torch.as_tensor(next_obs_buf, device=device)
        with torch.no_grad():
            values = agent.value(b_obs).reshape(rollout_shape).cpu().numpy()
            next_values = agent.value(b_next_obs).cpu().numpy()
            b_logprobs = agent.dist(b_obs).log_prob(b_actions)  # log pi_old(a|s)
        if args.loss == "kl":  # pi_old, frozen, for PPO-KL's exact KL
            old_agent = copy.deepcopy(agent).requires_grad_(False)
        next_values = next_values * (1.0 - terminated_buf)  # 0 if terminated

        # --- advantage: GAE(lambda); the critic's target R_t = A_t + V(s_t) ---
        gamma, lam = args.gamma, args.gae_lambda
        advantages = gae(rewards_buf, values, next_values, dones_buf, gamma, lam)
        returns = advantages + values
        b_advantages = torch.as_tensor(advantages, device=device).flatten()
        b_returns = torch.as_tensor(returns, device=device).flatten()
        b_values = torch.as_tensor(values, device=device).flatten()

        # --- update: update_epochs passes over the rollout in minibatches ---
        clipfracs = []
        epochs = [torch.randperm(len(b_obs), device=device) for _ in range(args.update_epochs)]
        for mb in torch.cat(epochs).split(len(b_obs) // args.num_minibatches):
            new_dist = agent.dist(b_obs[mb])
            logratio = new_dist.log_prob(b_actions[mb]) - b_logprobs[mb]
            ratio = logratio.exp()  # pi(a|s) / pi_old(a|s)
            approx_kl = ((ratio - 1) - logratio).mean().item()  # k3 estimate
            clipfracs.append(((ratio - 1).abs() > args.clip_coef).float().mean().item())
            mb_advantages = b_advantages[mb]
            if args.norm_adv:
                mb_advantages = mb_advantages - mb_advantages.mean()
                mb_advantages = mb_advantages / (mb_advantages.std() + 1e-8)
            if args.loss == "clip":  # PPO-Clip or PPO-KL
                pg_loss = clip_policy_loss(ratio, mb_advantages, args.clip_coef)
            else:
                kl = kl_divergence(old_agent.dist(b_obs[mb]), new_dist)
                pg_loss = kl_penalty_policy_loss(ratio, mb_advantages, kl, kl_beta)
            new_values = agent.value(b_obs[mb])
            v_loss = value_loss(new_values, b_returns[mb])
            if args.clip_vloss:  # V stays within clip_coef of V_old
                v_loss = clipped_value_loss(new_values, b_values[mb], b_returns[mb], args.clip_coef)
            entropy_loss = new_dist.entropy().mean()
            loss = pg_loss - args.ent_coef * entropy_loss + args.vf_coef * v_loss
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
            optimizer.step()
            if args.target_kl is not None and approx_kl > args.target_kl:
                break

        if args.loss == "kl":  # adapt beta to d = E_t[KL(pi_old || pi)]
            update_kl = kl_divergence(old_agent.dist(b_obs), agent.dist(b_obs)).mean().item()
            kl_beta = adapt_kl_beta(kl_beta, update_kl, args.kl_target)

        # --- logging ---
        sps = int((global_step - start_step) / (time.time() - start_time))
        if global_step // 10_000 > previous_step // 10_000:
            mean10 = mean_return(recent_returns)
            print(f"global_step={global_step}, SPS={sps}, mean_return_last10={mean10}")
        if args.track:
            metrics = {
                "global_step": global_step,
                "charts/learning_rate": optimizer.param_groups[0]["lr"],
                "charts/SPS": sps,
                "losses/value_loss": v_loss.item(),
                "losses/policy_loss": pg_loss.item(),
                "losses/entropy": entropy_loss.item(),
                "losses/explained_variance": explained_variance(values, returns),
                "losses/approx_kl": approx_kl,
                "losses/clipfrac": np.mean(clipfracs),  # minibatches' mean
            }
            if args.loss == "kl":
                metrics["losses/kl_beta"] = kl_beta
            wandb.log(metrics)

        # --- checkpoint: every --save-every steps; at the end; at a stop ---
        every = args.save_every
        save_now = every and global_step // every > previous_step // every
        last = global_step >= args.total_timesteps or STOP
        if save_now or (last and (every or args.save_model)):
            checkpoint = {
                "model": agent.state_dict(),
                "optimizer": optimizer.state_dict(),
                "normalizer": normalizer.state_dict(),
                "args": asdict(args),
                "run_name": run_name,
                "global_step": global_step,
                "kl_beta": kl_beta,
                "torch_rng": torch.get_rng_state(),
                "wandb_id": wandb.run.id if wandb else None,
            }
            save_checkpoint(path, checkpoint)
    envs.close()
    result = {"global_step": global_step, "sps": sps, "stopped": STOP[0] if STOP else None}
    result["mean_return_last10"] = mean_return(recent_returns)
    if STOP and os.path.isfile(path):  # with --save-every or --save-model
        print(f"stopped; resume: python {os.path.basename(__file__)} --resume {path}")
    elif args.save_model:
        result.update(evaluate(path, args.eval_episodes, args.seed), model_path=path)
    if wandb:
        wandb.finish()
    return result


# --- plumbing: checks, logging, checkpoints, evaluation ---
def check_args(args, checkpoint):
    """Refuse settings that cannot work, with a line that says what to do."""
    sizes = ["total_timesteps", "num_envs", "num_steps"]
    for name in [*sizes, "num_minibatches", "update_epochs", "eval_episodes"]:
        if getattr(args, name) <= 0:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must be positive, got {getattr(args, name)}")
    if not 0.0 <= args.gamma <= 1.0:
        raise UsageError(f"--gamma must be in [0, 1], got {args.gamma}")
    if args.save_every < 0:
        raise UsageError(f"--save-every must be 0 or more, got {args.save_every}")
    if args.num_envs * args.num_steps % args.num_minibatches:
        raise UsageError("--num-minibatches must divide the batch, --num-envs * --num-steps")
    if args.cuda and not torch.cuda.is_available():
        raise UsageError("--cuda: torch sees no CUDA device; drop --cuda")
    saved = vars(checkpoint.get("args", args))  # what cannot change on resume
    for name in ["env_id", "shared_trunk"]:
        if getattr(args, name) != saved[name]:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} cannot change on resume; it was {saved[name]}")
    if checkpoint.get("global_step", 0) >= args.total_timesteps:
        raise UsageError("that run is done; pass a larger --total-timesteps")


def parse_args(argv=None) -> Args:
    """The flags; with --resume, the saved settings are their defaults"""
    args = tyro.cli(Args, args=argv)
    if args.resume is not None:
        saved = load_checkpoint(args.resume)["args"]
        args = tyro.cli(Args, args=argv, default=saved)
    return args


def start_wandb(args, run_name, checkpoint):
    import wandb

    run_id = checkpoint.get("wandb_id")  # a resumed run's own
    wandb.init(project=args.wandb_project_name, name=run_name, id=run_id, resume="allow")
    wandb.config.update(asdict(args), allow_val_change=True)
    wandb.define_metric("*", step_metric="global_step")
    return wandb


def log_episode(wandb, global_step, episodic_return):
    print(f"global_step={global_step}, episodic_return={episodic_return:.2f}")
    if wandb:
        wandb.log({"global_step": global_step, "charts/episodic_return": episodic_return})


def mean_return(returns):
    """The mean of the last returns; None if none (JSON has no NaN)"""
    return round(float(np.mean(returns)), 2) if returns else None


def save_checkpoint(path, checkpoint):
    """A temporary file, renamed: no crash leaves half a file"""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    torch.save(checkpoint, path + ".tmp")
    os.replace(path + ".tmp", path)
    print(f"saved {path}")


def load_checkpoint(path) -> dict:
    """The checkpoint at `path`, its args an Args, or a UsageError"""
    try:  # weights_only: a foreign file cannot run code
        checkpoint = torch.load(path, weights_only=True, map_location="cpu")
    except (OSError, pickle.UnpicklingError, RuntimeError, EOFError) as e:
        why = f"torch.load(weights_only=True) cannot read it ({type(e).__name__})"
        raise UsageError(f"{path}: {why}") from None
    try:
        checkpoint["args"] = Args(**checkpoint["args"])
    except (TypeError, KeyError, IndexError) as e:
        raise UsageError(f"{path}: not saved by this script ({e!r})") from None
    return checkpoint


def load_model(model, state, path):
    try:
        model.load_state_dict(state)
    except RuntimeError as e:  # another network: a size mismatch
        why = " ".join(str(e).split())
        raise UsageError(f"{path}: the saved model does not fit: {why}") from None


@torch.no_grad()
def evaluate(path, eval_episodes=10, seed=0, capture_video=False) -> dict:
    """The saved policy's returns, acting with its likeliest action"""
    checkpoint = load_checkpoint(path)
    saved = checkpoint["args"]
    envs = make_envs(saved.env_id, 1, capture_video, f"{saved.exp_name}-eval", eval_episodes)
    obs_dim = envs.single_observation_space.shape[0]
    agent = Agent(obs_dim, envs.single_action_space, saved.shared_trunk)
    load_model(agent, checkpoint["model"], path)
    normalizer = Normalizer(obs_dim, 1, saved.gamma, not agent.discrete)
    normalizer.load_state_dict(checkpoint["normalizer"])
    obs, _ = envs.reset(seed=seed)
    while len(envs.return_queue) < eval_episodes:
        action = agent.dist(torch.as_tensor(normalizer.obs(obs))).mode
        obs, *_ = envs.step(action.numpy())
    envs.close()
    return {"eval_returns": list(envs.return_queue), "eval_mean_return": np.mean(envs.return_queue)}


def ask_to_stop(signum, frame):
    """Ctrl-C or SIGTERM: stop after this iteration (a second Ctrl-C: at once)"""
    if STOP:
        raise KeyboardInterrupt
    STOP.append(signal.Signals(signum).name)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, ask_to_stop)
    signal.signal(signal.SIGTERM, ask_to_stop)
    try:
        result = main(parse_args())
    except UsageError as e:
        raise SystemExit(f"{os.path.basename(__file__)}: error: {e}") from None
    print(json.dumps(result))
    if STOP:  # the exit status 128 + the signal's number: 130, or 143
        raise SystemExit(128 + signal.Signals[STOP[0]])
