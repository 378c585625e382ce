"""A2C: synchronous advantage actor-critic (Mnih et al. 2016), discrete and continuous actions.

What this chapter adds to reinforce.py: a critic V(s), learned alongside the actor. The weight of
log pi(a_t|s_t) is then the advantage A_t = r_t + gamma*V(s_{t+1}) - V(s_t), or its GAE(lambda)
average over n steps, so the agent learns from short rollouts of `--num-steps` steps in `--num-envs`
envs (one gradient step each) instead of whole episodes.

    python actor_critic.py --env-id CartPole-v1
"""

import json
import os
import pickle
import time
from collections import deque
from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import tyro
from gymnasium.wrappers.utils import RunningMeanStd  # Chan et al.'s parallel update of mean and var


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
    """if toggled, save weights, normalization statistics and args to `runs/{run_name}/{exp_name}.pt`"""
    eval_checkpoint: str | None = None
    """path of a saved model: evaluate it for `--eval-episodes` episodes instead of training"""
    eval_episodes: int = 10
    """number of episodes for the evaluation of a saved model"""

    env_id: str = "CartPole-v1"
    """the id of the gymnasium environment"""
    total_timesteps: int = 500_000
    """total environment steps of the experiment"""
    learning_rate: float = 7e-4
    """the learning rate of the Adam optimizer (small: with no trust region, large steps undo a solved task)"""
    num_envs: int = 8
    """the number of parallel environments"""
    num_steps: int = 5
    """the number of steps per environment in each rollout (A2C's many small updates, as in SB3 and rl-zoo)"""
    anneal_lr: bool = False
    """if toggled, the learning rate decays linearly to 0 over the run"""
    gamma: float = 0.99
    """the discount factor gamma"""
    gae_lambda: float = 1.0
    """the lambda of generalized advantage estimation (1: the n-step return of the A2C paper)"""
    norm_adv: bool = False
    """if toggled, normalize advantages to mean 0, std 1 within each rollout (off: once solved, it scales up noise)"""
    shared_trunk: bool = False
    """if toggled, the critic shares all but the last layer with the actor"""
    ent_coef: float = 0.0
    """the coefficient of the entropy bonus (0: a bonus keeps the policy too random to hold 500 on CartPole)"""
    vf_coef: float = 0.5
    """the coefficient of the value loss"""
    max_grad_norm: float = 0.5
    """the maximum norm for gradient clipping"""


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


def true_next_obs(obs: np.ndarray, done: np.ndarray, info: dict) -> np.ndarray:
    """s_{t+1} of each env's transition: the returned obs, except where the episode ended,
    where the returned obs already belongs to the next episode and s_{t+1} is info["final_obs"]."""
    next_obs = obs.copy() if done.any() else obs
    for i in np.flatnonzero(done):
        next_obs[i] = info["final_obs"][i]
    return next_obs


def check_args(args: Args):
    """Refuse settings that cannot work, before training, each with one line that says what to do."""
    for name in ["total_timesteps", "num_envs", "num_steps", "eval_episodes"]:
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    batch_size = args.num_envs * args.num_steps
    if args.total_timesteps < batch_size:
        raise UsageError(f"--total-timesteps ({args.total_timesteps}) is smaller than one rollout ({batch_size} steps)")
    if args.cuda and not torch.cuda.is_available():
        raise UsageError("--cuda was given but torch sees no CUDA device; drop --cuda")


# --- normalization of observations and rewards (continuous control) ---
class Normalizer:
    """Continuous control (`enabled`): observations normalized by their running mean and std, rewards scaled
    by the running std of the discounted return. Otherwise observations are only cast to float32."""

    def __init__(self, obs_dim: int, num_envs: int, gamma: float, enabled: bool):
        self.enabled, self.gamma, self.discounted_return = enabled, gamma, np.zeros(num_envs)
        self.obs_rms, self.return_rms = RunningMeanStd(shape=(obs_dim,)), RunningMeanStd()

    def obs(self, raw_obs: np.ndarray, update: bool = False) -> np.ndarray:
        if not self.enabled:
            return raw_obs.astype(np.float32)
        if update:
            self.obs_rms.update(raw_obs)
        return np.clip((raw_obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + 1e-8), -10, 10).astype(np.float32)

    def step(self, raw_obs, raw_next_obs, reward, done):
        """Update the statistics with one env step; returns its obs, next_obs and reward, normalized."""
        obs = self.obs(raw_obs, update=True)
        if self.enabled:
            self.discounted_return = self.discounted_return * self.gamma + reward
            self.return_rms.update(self.discounted_return)
            self.discounted_return[done] = 0.0
            reward = np.clip(reward / np.sqrt(self.return_rms.var + 1e-8), -10.0, 10.0)
        return obs, self.obs(raw_next_obs), reward


# --- networks: actor and critic MLPs, which may share all but their last layer ---
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
    for Box actions. Critic V(s): an MLP of its own, or (`shared_trunk`) the actor's layers but the last."""

    def __init__(self, obs_dim: int, action_space: gym.Space, shared_trunk: bool = False):
        super().__init__()
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        action_dim = int(action_space.n) if self.discrete else action_space.shape[0]
        self.actor = mlp(obs_dim, action_dim, out_std=0.01)  # logits, or the Gaussian mean
        if shared_trunk:  # the same layer objects, so the same parameters, and a last layer of its own
            self.critic = nn.Sequential(*self.actor[:-1], layer_init(nn.Linear(self.actor[-1].in_features, 1), std=1.0))
        else:
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


# --- acting in the rollout: a numpy copy of the actor ---
# At num_envs rows a call, torch spends most of its time dispatching ops; numpy does not (benchmarks/README.md).
NUMPY_ACTIVATIONS = {nn.Tanh: np.tanh, nn.ReLU: lambda x: np.maximum(x, 0.0)}


class NumpyPolicy:
    """Samples a ~ pi(.|s) with a numpy copy of agent.actor, taken before each rollout. Checked on probe_obs
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


# --- the math: advantages and losses ---
def gae(rewards, values, next_values, dones, gamma: float, lam: float) -> np.ndarray:
    """Generalized advantage estimation over a (T, N) rollout of numpy arrays.

    delta_t = r_t + gamma*V(s_{t+1}) - V(s_t)        (V(s_{t+1}) = 0 if the episode terminated)
    A_t     = delta_t + gamma*lam*(1 - done_t)*A_{t+1}  (done_t: the episode ended at t, either way)

    So a truncated episode keeps its bootstrap V(final obs) but shares no advantage with the next one.
    """
    # numpy, not torch: this Python loop over T rows is several times cheaper on numpy arrays
    advantages, last = np.zeros_like(rewards), 0.0
    deltas = rewards + gamma * next_values - values
    for t in reversed(range(len(rewards))):
        last = deltas[t] + gamma * lam * (1.0 - dones[t]) * last
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
    return float("nan") if returns.var() == 0 else float(1 - (returns - values).var() / returns.var())


# --- evaluate a saved model ---
@torch.no_grad()
def evaluate(path: str, eval_episodes: int = 10, seed: int = 0, capture_video: bool = False) -> list:
    """Run `eval_episodes` episodes with the saved policy's most likely action; returns their returns."""
    try:  # weights_only: unpickles tensors and plain types only, so a foreign file cannot run code
        checkpoint = torch.load(path, weights_only=True)
        saved = Args(**checkpoint["args"])
        envs = make_envs(saved.env_id, 1, capture_video, f"{saved.exp_name}-eval")
        agent = Agent(envs.single_observation_space.shape[0], envs.single_action_space, saved.shared_trunk)
        agent.load_state_dict(checkpoint["model"])
        normalizer = Normalizer(envs.single_observation_space.shape[0], 1, saved.gamma, enabled=not agent.discrete)
        normalizer.obs_rms.mean, normalizer.obs_rms.var = (checkpoint["obs_rms"][k].numpy() for k in ("mean", "var"))
    except (OSError, pickle.UnpicklingError, RuntimeError, KeyError, TypeError, AttributeError, gym.error.Error) as e:
        raise UsageError(f"{path}: not a checkpoint written by this script's --save-model ({type(e).__name__})")
    obs, _ = envs.reset(seed=seed)
    returns, episodic_return = [], 0.0
    while len(returns) < eval_episodes:
        out = agent.actor(torch.as_tensor(normalizer.obs(obs)))  # normalized with the saved, frozen statistics
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

    batch_size = args.num_envs * args.num_steps
    num_iterations = args.total_timesteps // batch_size
    run_name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    envs = make_envs(args.env_id, args.num_envs, args.capture_video, run_name)
    if args.track:
        import wandb
        wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, config=asdict(args), name=run_name)
        wandb.define_metric("global_step")
        wandb.define_metric("*", step_metric="global_step")

    # --- seeding: torch (initial weights, minibatch order), numpy (the rollout's actions), the envs ---
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    torch.set_num_threads(1)  # networks this small run faster without the thread pool's overhead
    device = torch.device("cuda" if args.cuda else "cpu")
    obs_dim = envs.single_observation_space.shape[0]
    agent = Agent(obs_dim, envs.single_action_space, args.shared_trunk).to(device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5, fused=True)  # fused: one kernel
    normalizer = Normalizer(obs_dim, args.num_envs, args.gamma, enabled=not agent.discrete)

    # Rollout storage, shaped (num_steps, num_envs, ...); next_obs[t] is the true s_{t+1} of transition t.
    action_shape = envs.single_action_space.shape
    obs_buf, next_obs_buf = (np.zeros((args.num_steps, args.num_envs, obs_dim), np.float32) for _ in range(2))
    actions_buf = np.zeros((args.num_steps, args.num_envs) + action_shape, np.int64 if agent.discrete else np.float32)
    rewards_buf, terminated_buf, dones_buf = (np.zeros((args.num_steps, args.num_envs), np.float32) for _ in range(3))
    episode_returns, episode_lengths = np.zeros(args.num_envs), np.zeros(args.num_envs, np.int64)
    recent_returns = deque(maxlen=10)  # the returns of the last 10 finished episodes
    global_step, start_time = 0, time.time()
    obs = normalizer.obs(envs.reset(seed=args.seed)[0], update=True)

    for iteration in range(1, num_iterations + 1):
        if args.anneal_lr:  # lr_k = lr * (1 - (k-1)/K)
            optimizer.param_groups[0]["lr"] = args.learning_rate * (1.0 - (iteration - 1.0) / num_iterations)

        # --- rollout: num_steps steps of num_envs envs with the current policy ---
        policy = NumpyPolicy(agent, rng, probe_obs=obs)
        for step in range(args.num_steps):
            global_step += args.num_envs
            # plain torch: torch.distributions.Categorical(logits=agent.dist_params(torch.as_tensor(obs))).sample()
            action = policy.sample(obs)
            obs_buf[step], actions_buf[step] = obs, action
            if not agent.discrete:  # the Gaussian sample is stored; only the env sees it clipped
                action = np.clip(action, envs.single_action_space.low, envs.single_action_space.high)
            raw_obs, reward, terminated, truncated, info = envs.step(action)
            done = terminated | truncated
            next_obs = true_next_obs(raw_obs, done, info)
            obs, next_obs_buf[step], rewards_buf[step] = normalizer.step(raw_obs, next_obs, reward, done)
            terminated_buf[step], dones_buf[step] = terminated, done

            # --- episode statistics: undiscounted, unnormalized return ---
            episode_returns += reward
            episode_lengths += 1
            for i in np.flatnonzero(done):
                recent_returns.append(episode_returns[i])
                print(f"global_step={global_step}, episodic_return={episode_returns[i]:.2f}")
                if args.track:
                    wandb.log({"global_step": global_step, "charts/episodic_return": episode_returns[i],
                               "charts/episodic_length": episode_lengths[i]})
            episode_returns[done], episode_lengths[done] = 0.0, 0

        # --- values: one batched pass over the rollout ---
        b_obs, b_actions = (torch.as_tensor(x, device=device).flatten(0, 1) for x in (obs_buf, actions_buf))
        with torch.no_grad():
            values = agent.value(b_obs).reshape(args.num_steps, args.num_envs).cpu().numpy()
            next_values = agent.value(torch.as_tensor(next_obs_buf, device=device)).cpu().numpy()
        next_values = next_values * (1.0 - terminated_buf)  # V(s_{t+1}) = 0 after termination

        # --- advantage: GAE(lambda); lambda=0 is the one-step TD error, value target R_t = A_t + V(s_t) ---
        advantages = gae(rewards_buf, values, next_values, dones_buf, args.gamma, args.gae_lambda)
        returns = advantages + values
        b_advantages, b_returns = (torch.as_tensor(x.ravel(), device=device) for x in (advantages, returns))

        # --- update: one gradient step on the rollout, then it is thrown away ---
        new_logprob, entropy = agent.log_prob_entropy(agent.dist_params(b_obs), b_actions)
        if args.norm_adv:
            b_advantages = (b_advantages - b_advantages.mean()) / (b_advantages.std() + 1e-8)
        pg_loss = policy_gradient_loss(new_logprob, b_advantages)
        v_loss = value_loss(agent.value(b_obs), b_returns)
        entropy_loss = entropy.mean()
        loss = pg_loss - args.ent_coef * entropy_loss + args.vf_coef * v_loss
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
        optimizer.step()

        # --- logging ---
        sps = int(global_step / (time.time() - start_time))
        mean_return = float(np.mean(recent_returns)) if recent_returns else float("nan")
        if iteration % 10 == 0 or iteration == num_iterations:
            print(f"global_step={global_step}, SPS={sps}, mean_return_last10={mean_return:.2f}")
        if args.track:
            wandb.log({"global_step": global_step, "charts/learning_rate": optimizer.param_groups[0]["lr"],
                       "charts/SPS": sps, "losses/value_loss": v_loss.item(), "losses/policy_loss": pg_loss.item(),
                       "losses/entropy": entropy_loss.item(),
                       "losses/explained_variance": explained_variance(values, returns)})

    envs.close()
    result = {"env_id": args.env_id, "global_step": global_step, "mean_return_last10": mean_return, "sps": sps,
              "wall_seconds": round(time.time() - start_time, 2)}
    if args.save_model:  # tensors and plain types only (see evaluate)
        result["model_path"] = path = f"runs/{run_name}/{args.exp_name}.pt"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        obs_rms = {"mean": torch.from_numpy(normalizer.obs_rms.mean), "var": torch.from_numpy(normalizer.obs_rms.var)}
        torch.save({"model": agent.cpu().state_dict(), "obs_rms": obs_rms, "args": asdict(args)}, path)
        result["eval_mean_return"] = float(np.mean(evaluate(path, args.eval_episodes, args.seed)))
    if args.track:
        wandb.finish()
    return result


if __name__ == "__main__":
    try:
        print(json.dumps(main(tyro.cli(Args))))
    except UsageError as e:
        raise SystemExit(f"{os.path.basename(__file__)}: error: {e}")
