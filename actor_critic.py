"""Synchronous advantage actor-critic (A2C, Mnih et al. 2016), discrete and continuous actions.

What this chapter adds to reinforce.py: instead of waiting for whole episodes and weighting
log pi(a_t|s_t) by their returns, a critic V(s) is learned alongside the actor, and the weight
is the advantage A_t = r_t + gamma*V(s_{t+1}) - V(s_t), or its GAE(lambda) average over n
steps. That works on short rollouts of `--num-steps` steps in `--num-envs` envs, one
gradient step each. `--shared-trunk` lets actor and critic share all but their last layer.

    python actor_critic.py --env-id CartPole-v1
    python actor_critic.py --env-id Acrobot-v1
"""

import importlib.util
import json
import math
import os
import random
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Optional

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import tyro
from gymnasium.vector import AutoresetMode


@dataclass
class Args:
    exp_name: str = "actor_critic"
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
    """if toggled, save weights, normalization statistics and args to `runs/{run_name}/actor_critic.pt`"""
    eval_checkpoint: Optional[str] = None
    """path of a saved model: evaluate it for `--eval-episodes` episodes instead of training"""
    eval_episodes: int = 10
    """number of episodes for the evaluation of a saved model"""

    # Algorithm specific arguments
    env_id: str = "CartPole-v1"
    """the id of the gymnasium environment"""
    total_timesteps: int = 300_000
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
    norm_adv: bool = True
    """if toggled, normalize the advantages of each rollout to mean 0, std 1"""
    shared_trunk: bool = False
    """if toggled, actor and critic share one MLP trunk and differ only in their last layer"""
    ent_coef: float = 0.01
    """the coefficient of the entropy bonus"""
    vf_coef: float = 0.5
    """the coefficient of the value loss"""
    max_grad_norm: float = 0.5
    """the maximum norm for gradient clipping"""


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
    for name in ["total_timesteps", "num_envs", "num_steps", "eval_episodes"]:
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    batch_size = args.num_envs * args.num_steps
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
            f"actor_critic.py's MLP needs a flat Box observation space; {env_id} has {observation_space} "
            "(wrap it in gymnasium.wrappers.FlattenObservation)"
        )
    if not isinstance(action_space, (gym.spaces.Discrete, gym.spaces.Box)) or (
        isinstance(action_space, gym.spaces.Box) and len(action_space.shape) != 1
    ):
        raise UsageError(f"actor_critic.py handles Discrete and 1-D Box action spaces; {env_id} has {action_space}")


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


def trunk(in_dim: int) -> nn.Sequential:
    return nn.Sequential(layer_init(nn.Linear(in_dim, 64)), nn.Tanh(), layer_init(nn.Linear(64, 64)), nn.Tanh())


class Agent(nn.Module):
    """Critic V(s) and actor pi(a|s): Categorical for Discrete actions, diagonal Gaussian
    with a state-independent log-std for Box actions. Each is an MLP trunk and a last layer;
    with `shared_trunk` the two use the same trunk."""

    def __init__(self, obs_dim: int, action_space: gym.Space, shared_trunk: bool = False):
        super().__init__()
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.shared_trunk = shared_trunk
        action_dim = int(action_space.n) if self.discrete else action_space.shape[0]
        self.actor_trunk = trunk(obs_dim)
        self.actor_head = layer_init(nn.Linear(64, action_dim), std=0.01)  # logits, or the Gaussian mean
        self.critic_trunk = self.actor_trunk if shared_trunk else trunk(obs_dim)
        self.critic_head = layer_init(nn.Linear(64, 1), std=1.0)
        if not self.discrete:
            self.actor_logstd = nn.Parameter(torch.zeros(action_dim))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic_head(self.critic_trunk(obs)).squeeze(-1)

    def actor(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor_head(self.actor_trunk(obs))

    def dist_params_and_value(self, obs: torch.Tensor):
        """What pi(.|s) is built from (the logits, or the Gaussian mean and log-std side by
        side) and V(s), for a batch of states; a shared trunk runs once for both."""
        features = self.actor_trunk(obs)
        value = self.critic_head(features if self.shared_trunk else self.critic_trunk(obs)).squeeze(-1)
        out = self.actor_head(features)
        if self.discrete:
            return out, value
        return torch.cat([out, self.actor_logstd.expand_as(out)], dim=-1), value

    # The formulas below are what torch.distributions computes (tests check them against it);
    # written out, the backward pass has a third fewer ops to go through.
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
    the policy is fixed, and the update computes log pi(a|s) with torch from the stored actions.
    """

    def __init__(self, agent: Agent, rng: np.random.Generator):
        linears = [m for m in agent.actor_trunk if isinstance(m, nn.Linear)] + [agent.actor_head]
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


def policy_gradient_loss(logprobs, advantages):
    """L = -E[ A_t * log pi(a_t|s_t) ]: the policy gradient with the advantage as the weight"""
    return -(advantages * logprobs).mean()


def value_loss(values, returns):
    """0.5*E[(V(s_t) - R_t)^2], R_t = A_t + V(s_t): the critic regresses on the GAE(lambda) return"""
    return 0.5 * ((values - returns) ** 2).mean()


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
    agent = Agent(env.observation_space.shape[0], env.action_space, saved.shared_trunk)
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
    agent = Agent(obs_dim, envs.single_action_space, args.shared_trunk).to(device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5, fused=True)  # fused: one kernel for all tensors

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
            episode_returns[done] = 0.0
            episode_lengths[done] = 0

        # --- actor and critic on the whole rollout: one batched pass ---
        b_obs = torch.from_numpy(obs_buf).to(device).reshape(batch_size, obs_dim)
        b_actions = torch.from_numpy(actions_buf).to(device).reshape((batch_size,) + action_shape)
        b_params, b_values = agent.dist_params_and_value(b_obs)
        b_logprobs, b_entropy = agent.log_prob_entropy(b_params, b_actions)
        values = b_values.detach().reshape(args.num_steps, args.num_envs).cpu().numpy()
        with torch.no_grad():
            next_values = agent.value(torch.from_numpy(next_obs_buf).to(device)).cpu().numpy()
        next_values = next_values * (1.0 - terminated_buf)  # V(s_{t+1}) = 0 after termination

        # --- advantage: GAE(lambda); lambda=0 is the one-step TD error, value target R_t = A_t + V(s_t) ---
        advantages = gae(rewards_buf, values, next_values, dones_buf, args.gamma, args.gae_lambda)
        returns = advantages + values
        b_advantages, b_returns = (torch.from_numpy(x.reshape(-1)).to(device) for x in (advantages, returns))
        if args.norm_adv:
            b_advantages = (b_advantages - b_advantages.mean()) / (b_advantages.std() + 1e-8)

        # --- update: one gradient step on the rollout, then it is thrown away ---
        pg_loss = policy_gradient_loss(b_logprobs, b_advantages)
        v_loss = value_loss(b_values, b_returns)
        entropy_loss = b_entropy.mean()
        loss = pg_loss - args.ent_coef * entropy_loss + args.vf_coef * v_loss
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
        optimizer.step()

        # --- logging ---
        sps = int(global_step / (time.time() - start_time))
        if iteration % 10 == 0 or iteration == num_iterations:
            mean_return = float(np.mean(recent_returns)) if recent_returns else float("nan")
            print(f"global_step={global_step}, SPS={sps}, mean_return_last10={mean_return:.2f}")
        if args.track:
            metrics = {
                "global_step": global_step,
                "charts/learning_rate": optimizer.param_groups[0]["lr"],
                "losses/value_loss": v_loss.item(),
                "losses/policy_loss": pg_loss.item(),
                "losses/entropy": entropy_loss.item(),
                "losses/explained_variance": explained_variance(values, returns),
                "charts/SPS": sps,
            }
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
        raise SystemExit(f"actor_critic.py: error: {e}")
