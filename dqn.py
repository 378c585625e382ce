"""DQN: deep Q-learning (Mnih et al. 2015) with Double DQN (van Hasselt et al. 2016), discrete actions.

The off-policy chapter. Instead of a policy, learn Q(s, a) by regressing it on the Bellman
optimality target  y = r + gamma * max_a' Q_target(s', a')  over transitions drawn from a
replay buffer. The data comes from a behaviour policy (epsilon-greedy on Q) while the
target policy being learned is greedy; the max in the target is what makes that need no
importance ratio. A target network, a copy of Q updated slowly, keeps y from chasing Q.

    python dqn.py --env-id CartPole-v1
    python dqn.py --env-id CartPole-v1 --no-double-dqn --loss mse
    python dqn.py --env-id MountainCar-v0 --total-timesteps 120000 --learning-rate 4e-3 \
        --buffer-size 10000 --learning-starts 1000 --gamma 0.98 --target-network-frequency 600 \
        --num-envs 1 --train-frequency 16 --gradient-steps 8 --exploration-fraction 0.2 \
        --end-e 0.07 --no-double-dqn --no-anneal-lr
(MountainCar needs the rounds of 8 gradient steps every 16 env steps: with one gradient step
every 2 env steps it fails, as measured in README.md.)
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
import torch.nn.functional as F
import tyro
from gymnasium.vector import AutoresetMode


@dataclass
class Args:
    exp_name: str = "dqn"
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
    """if toggled, save the Q-network and args to `runs/{run_name}/dqn.pt` and evaluate it greedily"""
    eval_checkpoint: Optional[str] = None
    """path of a saved model: evaluate it for `--eval-episodes` episodes instead of training"""
    eval_episodes: int = 10
    """number of episodes for the evaluation of a saved model"""
    eval_epsilon: float = 0.0
    """epsilon of the evaluation policy (0: greedy)"""

    # Algorithm specific arguments
    env_id: str = "CartPole-v1"
    """the id of the environment"""
    total_timesteps: int = 50_000
    """total environment steps of the experiment"""
    learning_rate: float = 2e-3
    """the learning rate of the Adam optimizer"""
    anneal_lr: bool = True
    """if toggled, the learning rate decays linearly to 0 over `total-timesteps` (steadies the final greedy policy)"""
    num_envs: int = 4
    """the number of parallel environments"""
    buffer_size: int = 100_000
    """the capacity of the replay buffer, in transitions"""
    gamma: float = 0.99
    """the discount factor gamma"""
    tau: float = 1.0
    """the target network update rate: theta_target <- tau*theta + (1 - tau)*theta_target (1.0: hard copy)"""
    target_network_frequency: int = 200
    """the number of env steps between target network updates"""
    batch_size: int = 128
    """the number of transitions sampled from the replay buffer per gradient step"""
    start_e: float = 1.0
    """the starting epsilon of the epsilon-greedy behaviour policy"""
    end_e: float = 0.05
    """the final epsilon of the epsilon-greedy behaviour policy"""
    exploration_fraction: float = 0.1
    """the fraction of `total-timesteps` over which epsilon goes linearly from start-e to end-e"""
    learning_starts: int = 2_000
    """the number of env steps of (random) play before learning starts"""
    train_frequency: int = 4
    """the number of env steps between training rounds; the behaviour policy is fixed in between"""
    gradient_steps: int = 1
    """the number of gradient steps in each training round (SB3's `gradient_steps`)"""
    double_dqn: bool = True
    """if toggled, Double DQN: the online network picks argmax_a' Q(s', a'), the target network evaluates it"""
    loss: Literal["huber", "mse"] = "huber"
    """the regression loss on the TD error: `huber` (smooth L1) or `mse`"""
    max_grad_norm: float = 10.0
    """the maximum norm for gradient clipping"""


class UsageError(ValueError):
    """A setting the script cannot run with; raised before training, printed as one line."""


# --- environments: gymnasium 1.x vector env with SAME_STEP autoreset ---
# With SAME_STEP, a sub-env that terminates or truncates is reset inside the same step():
# the returned obs is already the first obs of the next episode, and the true last obs
# of the finished episode is in info["final_obs"]. Every transition returned is real, so
# every one goes into the replay buffer, with the final obs as its s'.
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
    # copy=False: step() returns its internal obs array; we copy it into the buffer at once
    return gym.vector.SyncVectorEnv(
        [make_env(env_id, i, capture_video, run_name) for i in range(num_envs)],
        autoreset_mode=AutoresetMode.SAME_STEP,
        copy=False,
    )


def true_next_obs(obs: np.ndarray, done: np.ndarray, info: dict) -> np.ndarray:
    """s' of each env's transition: the returned obs, except where the episode ended,
    where the returned obs already belongs to the next episode and s' is info["final_obs"]."""
    if not done.any():
        return obs
    next_obs = obs.copy()
    for i in np.flatnonzero(done):
        next_obs[i] = info["final_obs"][i]
    return next_obs


def check_args(args: Args):
    """Refuse settings that cannot work, each with one line that says what to do."""
    for name in ["total_timesteps", "num_envs", "buffer_size", "target_network_frequency", "batch_size",
                 "train_frequency", "gradient_steps", "eval_episodes"]:
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.batch_size > args.buffer_size:
        raise UsageError(f"--batch-size ({args.batch_size}) is larger than --buffer-size ({args.buffer_size})")
    if args.learning_starts < args.batch_size:
        raise UsageError(f"--learning-starts ({args.learning_starts}) must be at least --batch-size ({args.batch_size})")
    if not 0.0 < args.tau <= 1.0:
        raise UsageError(f"--tau must be in (0, 1], got {args.tau}")
    for name in ["start_e", "end_e", "eval_epsilon"]:
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise UsageError(f"--{name.replace('_', '-')} must be in [0, 1], got {getattr(args, name)}")
    if not 0.0 < args.exploration_fraction <= 1.0:
        raise UsageError(f"--exploration-fraction must be in (0, 1], got {args.exploration_fraction}")
    if args.eval_checkpoint is not None and not os.path.isfile(args.eval_checkpoint):
        raise UsageError(f"--eval-checkpoint {args.eval_checkpoint}: no such file (train with --save-model first)")
    if args.env_id not in gym.registry:
        raise UsageError(f"unknown env id '{args.env_id}'; registered ids look like CartPole-v1, Acrobot-v1, MountainCar-v0")
    if args.capture_video and importlib.util.find_spec("moviepy") is None:
        raise UsageError("--capture-video needs moviepy: pip install moviepy")
    if args.cuda and not torch.cuda.is_available():
        raise UsageError("--cuda was given but torch sees no CUDA device; drop --cuda")


def check_spaces(env_id: str, observation_space: gym.Space, action_space: gym.Space):
    if not (isinstance(observation_space, gym.spaces.Box) and len(observation_space.shape) == 1):
        raise UsageError(
            f"dqn.py's MLP needs a flat Box observation space; {env_id} has {observation_space} "
            "(wrap it in gymnasium.wrappers.FlattenObservation)"
        )
    if not isinstance(action_space, gym.spaces.Discrete):
        raise UsageError(
            f"dqn.py needs a discrete action space; {env_id} has {action_space}; use ppo.py for continuous control"
        )


# --- the network: Q(s, .) for all actions at once ---
class QNetwork(nn.Module):
    def __init__(self, obs_dim: int, num_actions: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(obs_dim, 128),
            nn.ReLU(),
            nn.Linear(128, 128),
            nn.ReLU(),
            nn.Linear(128, num_actions),
        )

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


# --- acting: epsilon-greedy on a numpy copy of Q ---
class NumpyQ:
    """Q(s, .) in numpy with a copy of the online network's weights, for acting only.

    The envs ask for num_envs actions at a time, one env step after another. For batches
    that small torch spends most of its time dispatching ops; numpy runs the same forward
    pass several times faster. The copy is refreshed after every gradient step."""

    def __init__(self, q_network: QNetwork):
        linears = [m for m in q_network.net if isinstance(m, nn.Linear)]
        self.layers = [(m.weight.detach().cpu().numpy().T.copy(), m.bias.detach().cpu().numpy().copy()) for m in linears]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = obs
        for weight, bias in self.layers[:-1]:
            x = np.maximum(x @ weight + bias, 0.0)  # ReLU
        weight, bias = self.layers[-1]
        return x @ weight + bias


def epsilon_greedy(q_values: np.ndarray, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """The behaviour policy: a uniformly random action with probability epsilon, else argmax_a Q(s, a)."""
    greedy = q_values.argmax(-1)
    explore = rng.random(len(q_values)) < epsilon
    return np.where(explore, rng.integers(0, q_values.shape[-1], len(q_values)), greedy)


def linear_schedule(start_e: float, end_e: float, duration: float, t: int) -> float:
    """epsilon_t = start_e + (end_e - start_e) * min(t / duration, 1)"""
    return start_e + (end_e - start_e) * min(t / duration, 1.0)


# --- the replay buffer: a preallocated numpy ring ---
class ReplayBuffer:
    """Holds the last `capacity` transitions (s, a, r, s', terminated); samples uniformly among them."""

    def __init__(self, capacity: int, obs_dim: int, rng: np.random.Generator):
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.actions = np.zeros(capacity, np.int64)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.capacity, self.pos, self.size, self.rng = capacity, 0, 0, rng

    def add(self, obs, next_obs, actions, rewards, terminated):
        """Store a batch of transitions (one per env), overwriting the oldest once full."""
        rows = (self.pos + np.arange(len(obs))) % self.capacity
        self.obs[rows], self.next_obs[rows], self.actions[rows] = obs, next_obs, actions
        self.rewards[rows], self.terminated[rows] = rewards, terminated
        self.pos = (self.pos + len(obs)) % self.capacity
        self.size = min(self.size + len(obs), self.capacity)

    def sample(self, batch_size: int):
        rows = self.rng.integers(0, self.size, batch_size)
        return self.obs[rows], self.actions[rows], self.rewards[rows], self.next_obs[rows], self.terminated[rows]


# --- the math: the Bellman target ---
def td_target(rewards, terminated, next_q_target, gamma: float, next_q_online=None):
    """The Bellman optimality target for a batch, from Q(s', .) of the target (and online) network.

    DQN:        y = r + gamma * (1 - terminated) * max_a' Q_target(s', a')
    Double DQN: y = r + gamma * (1 - terminated) * Q_target(s', argmax_a' Q_online(s', a'))

    Only termination removes the bootstrap: a transition cut by a time limit still has a
    future, and Q_target(s', .) estimates it.
    """
    if next_q_online is None:
        next_value = next_q_target.max(-1).values
    else:  # the online net picks the action, the target net evaluates it: less max-bias
        next_value = next_q_target.gather(-1, next_q_online.argmax(-1, keepdim=True)).squeeze(-1)
    return rewards + gamma * (1.0 - terminated) * next_value


# --- save and evaluate ---
def save_checkpoint(path: str, q_network: QNetwork, args: Args):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save({"model": q_network.state_dict(), "args": asdict(args)}, path)


def evaluate(path: str, eval_episodes: int = 10, seed: int = 0, epsilon: float = 0.0, capture_video: bool = False) -> list:
    """Run `eval_episodes` episodes epsilon-greedy (greedy by default) on the saved Q; returns their returns."""
    checkpoint = torch.load(path, weights_only=False)
    saved = Args(**checkpoint["args"])
    env = make_env(saved.env_id, 0, capture_video, f"{saved.exp_name}-eval")()
    q_network = QNetwork(env.observation_space.shape[0], int(env.action_space.n))
    q_network.load_state_dict(checkpoint["model"])
    q_numpy, rng = NumpyQ(q_network), np.random.default_rng(seed)
    returns = []
    for episode in range(eval_episodes):
        obs, _ = env.reset(seed=seed + episode)
        done, episodic_return = False, 0.0
        while not done:
            action = epsilon_greedy(q_numpy(obs[None].astype(np.float32)), epsilon, rng)[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            episodic_return += float(reward)
            done = terminated or truncated
        returns.append(episodic_return)
    env.close()
    return returns


def main(args: Args) -> dict:
    check_args(args)
    if args.eval_checkpoint is not None:
        returns = evaluate(args.eval_checkpoint, args.eval_episodes, args.seed, args.eval_epsilon, args.capture_video)
        for r in returns:
            print(f"eval_episodic_return={r}")
        return {"eval_returns": returns, "eval_mean_return": float(np.mean(returns))}

    run_name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    try:
        envs = make_envs(args.env_id, args.num_envs, args.capture_video, run_name)
    except gym.error.DependencyNotInstalled as e:  # e.g. a MuJoCo env without gymnasium[mujoco]
        raise UsageError(f"{args.env_id} needs a package that is not installed: {e}") from None
    check_spaces(args.env_id, envs.single_observation_space, envs.single_action_space)

    if args.track:
        import wandb

        wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, config=asdict(args), name=run_name)
        wandb.define_metric("global_step")
        wandb.define_metric("*", step_metric="global_step")

    # --- seeding ---
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)  # exploration and replay sampling
    torch.backends.cudnn.deterministic = args.torch_deterministic
    # Networks this small run faster on one thread than with the thread pool's overhead.
    torch.set_num_threads(1)
    device = torch.device("cuda" if args.cuda else "cpu")

    obs_dim, num_actions = envs.single_observation_space.shape[0], int(envs.single_action_space.n)
    q_network = QNetwork(obs_dim, num_actions).to(device)
    target_network = QNetwork(obs_dim, num_actions).to(device)
    target_network.load_state_dict(q_network.state_dict())
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate, fused=True)  # fused: one kernel for all tensors
    q_numpy = NumpyQ(q_network)
    buffer = ReplayBuffer(args.buffer_size, obs_dim, rng)

    episode_returns = np.zeros(args.num_envs)
    episode_lengths = np.zeros(args.num_envs, np.int64)
    recent_returns = deque(maxlen=10)
    global_step, gradient_steps = 0, 0
    start_time = time.time()
    raw_obs, _ = envs.reset(seed=args.seed)
    envs.action_space.seed(args.seed)

    while global_step < args.total_timesteps:
        # --- act: epsilon-greedy behaviour policy ---
        obs = raw_obs.astype(np.float32)
        epsilon = linear_schedule(args.start_e, args.end_e, args.exploration_fraction * args.total_timesteps, global_step)
        if global_step < args.learning_starts:
            actions = rng.integers(0, num_actions, args.num_envs)  # before learning: uniformly random play
        else:
            actions = epsilon_greedy(q_numpy(obs), epsilon, rng)
        raw_obs, rewards, terminated, truncated, info = envs.step(actions)
        done = terminated | truncated
        previous_step, global_step = global_step, global_step + args.num_envs

        # --- store: s' is the true final obs at an episode end; only termination stops the bootstrap ---
        buffer.add(obs, true_next_obs(raw_obs, done, info), actions, rewards, terminated)

        # --- episode statistics ---
        episode_returns += rewards
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
                        "charts/epsilon": epsilon,
                    }
                )
        episode_returns[done] = 0.0
        episode_lengths[done] = 0

        if global_step < args.learning_starts:
            continue

        # --- learn: gradient_steps gradient steps every train_frequency env steps (num_envs arrive at a time) ---
        training_rounds = global_step // args.train_frequency - previous_step // args.train_frequency
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = args.learning_rate * (1.0 - global_step / args.total_timesteps)
        for _ in range(training_rounds * args.gradient_steps):
            b_obs, b_actions, b_rewards, b_next_obs, b_terminated = (
                torch.from_numpy(x).to(device) for x in buffer.sample(args.batch_size)
            )
            with torch.no_grad():
                next_q_target = target_network(b_next_obs)
                next_q_online = q_network(b_next_obs) if args.double_dqn else None
                y = td_target(b_rewards, b_terminated, next_q_target, args.gamma, next_q_online)
            q_taken = q_network(b_obs).gather(-1, b_actions.unsqueeze(-1)).squeeze(-1)  # Q(s, a) of the stored a
            loss = F.smooth_l1_loss(q_taken, y) if args.loss == "huber" else F.mse_loss(q_taken, y)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(q_network.parameters(), args.max_grad_norm)
            optimizer.step()
            gradient_steps += 1
        if training_rounds > 0:  # the behaviour policy changes only here, and holds until the next round
            q_numpy = NumpyQ(q_network)

        # --- target network: theta_target <- tau*theta + (1 - tau)*theta_target, every target_network_frequency env steps ---
        if global_step // args.target_network_frequency > previous_step // args.target_network_frequency:
            with torch.no_grad():
                for target_param, param in zip(target_network.parameters(), q_network.parameters()):
                    target_param.lerp_(param, args.tau)

        # --- logging ---
        if global_step // 1000 > previous_step // 1000:
            sps = int(global_step / (time.time() - start_time))
            mean_return = float(np.mean(recent_returns)) if recent_returns else float("nan")
            if global_step // 10_000 > previous_step // 10_000:
                print(f"global_step={global_step}, SPS={sps}, mean_return_last10={mean_return:.2f}, epsilon={epsilon:.3f}")
            if args.track and gradient_steps > 0:
                wandb.log(
                    {
                        "global_step": global_step,
                        "losses/td_loss": loss.item(),
                        "losses/q_values": q_taken.mean().item(),
                        "charts/epsilon": epsilon,
                        "charts/SPS": sps,
                    }
                )

    envs.close()
    result = {
        "env_id": args.env_id,
        "global_step": global_step,
        "mean_return_last10": float(np.mean(recent_returns)) if recent_returns else float("nan"),
        "final_epsilon": epsilon,
        "gradient_steps": gradient_steps,
        "sps": int(global_step / (time.time() - start_time)),
        "wall_seconds": round(time.time() - start_time, 2),
    }
    if args.save_model:
        model_path = f"runs/{run_name}/{args.exp_name}.pt"
        save_checkpoint(model_path, q_network.cpu(), args)
        returns = evaluate(model_path, args.eval_episodes, args.seed, args.eval_epsilon)
        result.update(model_path=model_path, eval_mean_return=float(np.mean(returns)))
    if args.track:
        wandb.finish()
    return result


if __name__ == "__main__":
    cli_args = tyro.cli(Args)
    try:
        print(json.dumps(main(cli_args)))
    except UsageError as e:
        raise SystemExit(f"dqn.py: error: {e}")
