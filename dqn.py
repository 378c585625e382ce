"""DQN: deep Q-learning (Mnih et al. 2015) with Double DQN (van Hasselt et al. 2016), discrete actions.

The off-policy chapter. Instead of a policy, learn Q(s, a) by regressing it on the Bellman optimality
target y = r + gamma * max_a' Q_target(s', a') over transitions drawn from a replay buffer. The data
comes from a behaviour policy (epsilon-greedy on Q) while the target policy being learned is greedy;
the max in the target is why that needs no importance ratio. A target network, a copy of Q updated
slowly, keeps y from chasing Q. (benchmarks/README.md has the MountainCar-v0 command line.)

    python dqn.py --env-id CartPole-v1 --no-double-dqn --loss huber  # nearer Mnih et al.: no Double DQN, clipped error
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
import torch.nn.functional as F
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
    """if toggled, save the Q-network and args to `runs/{run_name}/{exp_name}.pt` and evaluate it greedily"""
    eval_checkpoint: str | None = None
    """path of a saved model: evaluate it for `--eval-episodes` episodes instead of training"""
    eval_episodes: int = 10
    """number of episodes for the evaluation of a saved model"""
    eval_epsilon: float = 0.0
    """epsilon of the evaluation policy (0: greedy)"""

    env_id: str = "CartPole-v1"
    """the id of the gymnasium environment"""
    total_timesteps: int = 70_000
    """total environment steps of the experiment (70k: with `mse`, a few seeds reach 475 only after 50k)"""
    learning_rate: float = 2e-3
    """the learning rate of the Adam optimizer"""
    anneal_lr: bool = True
    """if toggled, the learning rate decays linearly to 0 over the run (steadies the final greedy policy)"""
    num_envs: int = 4
    """the number of parallel environments"""
    buffer_size: int = 100_000
    """the capacity of the replay buffer, in transitions"""
    gamma: float = 0.99
    """the discount factor gamma"""
    tau: float = 0.02
    """the target network update rate: theta_target <- tau*theta + (1 - tau)*theta_target (1.0: hard copy)"""
    target_network_frequency: int = 4
    """the number of env steps between target network updates (4, with tau 0.02: an average over ~50 updates)"""
    batch_size: int = 128
    """the number of transitions sampled from the replay buffer per gradient step"""
    start_e: float = 1.0
    """the starting epsilon of the epsilon-greedy behaviour policy"""
    end_e: float = 0.01
    """the final epsilon of the epsilon-greedy behaviour policy (small: late episodes act almost greedily)"""
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
    loss: Literal["huber", "mse"] = "mse"
    """the regression loss on the TD error: `mse` (keeps a solved CartPole in more seeds) or `huber` (smooth L1)"""
    max_grad_norm: float = 10.0
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
    try:  # copy=False: step() returns its internal obs array; we copy it into the buffer at once
        envs = gym.vector.SyncVectorEnv(thunks, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP, copy=False)
    except gym.error.Error as e:  # an unknown id, MuJoCo without gymnasium[mujoco], a video without moviepy
        raise UsageError(f"{env_id}: {e}") from None
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    if not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1):
        raise UsageError(f"the MLP needs a flat Box observation space; {env_id} has {obs_space}")
    if not isinstance(action_space, gym.spaces.Discrete):
        raise UsageError(f"DQN needs a discrete action space; {env_id} has {action_space}; use ppo.py for it")
    return envs


def true_next_obs(obs: np.ndarray, done: np.ndarray, info: dict) -> np.ndarray:
    """s' of each env's transition: the returned obs, except where the episode ended,
    where the returned obs already belongs to the next episode and s' is info["final_obs"]."""
    next_obs = obs.copy() if done.any() else obs
    for i in np.flatnonzero(done):
        next_obs[i] = info["final_obs"][i]
    return next_obs


def check_args(args: Args):
    """Refuse settings that cannot work, before training, each with one line that says what to do."""
    for name in ["total_timesteps", "num_envs", "buffer_size", "target_network_frequency", "batch_size",
                 "train_frequency", "gradient_steps", "eval_episodes"]:
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.batch_size > args.buffer_size:
        raise UsageError(f"--batch-size ({args.batch_size}) is larger than --buffer-size ({args.buffer_size})")
    if args.learning_starts < args.batch_size:
        raise UsageError(f"--learning-starts ({args.learning_starts}) is below --batch-size ({args.batch_size})")
    for name in ["tau", "exploration_fraction"]:
        if not 0.0 < getattr(args, name) <= 1.0:
            raise UsageError(f"--{name.replace('_', '-')} must be in (0, 1], got {getattr(args, name)}")
    for name in ["start_e", "end_e", "eval_epsilon"]:
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise UsageError(f"--{name.replace('_', '-')} must be in [0, 1], got {getattr(args, name)}")
    if args.cuda and not torch.cuda.is_available():
        raise UsageError("--cuda was given but torch sees no CUDA device; drop --cuda")


# --- the network: Q(s, .) for all actions at once ---
class QNetwork(nn.Sequential):
    def __init__(self, obs_dim: int, num_actions: int, hidden: int = 128):
        super().__init__(
            nn.Linear(obs_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, num_actions),
        )


# --- acting: epsilon-greedy on a numpy copy of Q ---
# At num_envs rows a call, torch spends most of its time dispatching ops; numpy does not (benchmarks/README.md).
NUMPY_ACTIVATIONS = {nn.Tanh: np.tanh, nn.ReLU: lambda x: np.maximum(x, 0.0)}


class NumpyQ:
    """Q(s, .) with a numpy copy of q_network's weights, taken again by refresh() after each training round.
    Checked once on probe_obs against q_network itself: it raises rather than act on another Q."""

    def __init__(self, q_network: QNetwork, probe_obs: np.ndarray):
        self.q_network = q_network
        self.refresh()
        got = self(probe_obs)
        with torch.no_grad():
            expected = q_network(torch.as_tensor(probe_obs, device=next(q_network.parameters()).device)).cpu().numpy()
        if not np.allclose(got, expected, rtol=1e-4, atol=1e-5):
            raise UsageError(f"NumpyQ differs from q_network by {np.abs(got - expected).max():.2g}; "
                             "make it follow your change to QNetwork, or act with the torch line beside it")

    def refresh(self):
        self.layers = []  # functions of x: Linear as x @ W^T + b, activations by NUMPY_ACTIVATIONS
        for layer in self.q_network:
            if isinstance(layer, nn.Linear):
                weight, bias = layer.weight.detach().cpu().numpy().T.copy(), layer.bias.detach().cpu().numpy().copy()
                self.layers.append(lambda x, weight=weight, bias=bias: x @ weight + bias)
            elif type(layer) in NUMPY_ACTIVATIONS:
                self.layers.append(NUMPY_ACTIVATIONS[type(layer)])
            else:
                raise UsageError(f"NumpyQ has no numpy version of layer {layer}; add one to NUMPY_ACTIVATIONS")

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            obs = layer(obs)
        return obs


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


# --- evaluate a saved model ---
def evaluate(path: str, eval_episodes: int = 10, seed: int = 0, epsilon: float = 0.0, capture_video: bool = False):
    """Run `eval_episodes` episodes epsilon-greedy (greedy by default) on the saved Q; returns their returns."""
    try:  # weights_only: unpickles tensors and plain types only, so a foreign file cannot run code
        checkpoint = torch.load(path, weights_only=True)
        saved = Args(**checkpoint["args"])
        envs = make_envs(saved.env_id, 1, capture_video, f"{saved.exp_name}-eval")
        q_network = QNetwork(envs.single_observation_space.shape[0], int(envs.single_action_space.n))
        q_network.load_state_dict(checkpoint["model"])
    except (OSError, pickle.UnpicklingError, RuntimeError, KeyError, TypeError, AttributeError, gym.error.Error) as e:
        raise UsageError(f"{path}: not a checkpoint written by this script's --save-model ({type(e).__name__})")
    obs, _ = envs.reset(seed=seed)
    q_numpy, rng = NumpyQ(q_network, obs), np.random.default_rng(seed)
    returns, episodic_return = [], 0.0
    while len(returns) < eval_episodes:
        obs, reward, terminated, truncated, _ = envs.step(epsilon_greedy(q_numpy(obs), epsilon, rng))
        episodic_return += float(reward[0])
        if terminated[0] or truncated[0]:
            returns.append(episodic_return)
            episodic_return = 0.0
    envs.close()
    return returns


def main(args: Args) -> dict:
    check_args(args)
    if args.eval_checkpoint is not None:  # evaluate a saved model instead of training
        returns = evaluate(args.eval_checkpoint, args.eval_episodes, args.seed, args.eval_epsilon, args.capture_video)
        return {"eval_returns": returns, "eval_mean_return": float(np.mean(returns))}

    run_name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    envs = make_envs(args.env_id, args.num_envs, args.capture_video, run_name)
    if args.track:
        import wandb
        wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, config=asdict(args), name=run_name)
        wandb.define_metric("global_step")
        wandb.define_metric("*", step_metric="global_step")

    # --- seeding: torch (initial weights), numpy (exploration and replay sampling), the envs ---
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    torch.set_num_threads(1)  # networks this small run faster without the thread pool's overhead
    device = torch.device("cuda" if args.cuda else "cpu")
    obs_dim, num_actions = envs.single_observation_space.shape[0], int(envs.single_action_space.n)
    q_network = QNetwork(obs_dim, num_actions).to(device)
    target_network = QNetwork(obs_dim, num_actions).to(device)
    target_network.load_state_dict(q_network.state_dict())
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate, fused=True)  # fused: one kernel
    buffer = ReplayBuffer(args.buffer_size, obs_dim, rng)
    episode_returns, episode_lengths = np.zeros(args.num_envs), np.zeros(args.num_envs, np.int64)
    recent_returns = deque(maxlen=10)  # the returns of the last 10 finished episodes
    global_step, start_time, gradient_steps = 0, time.time(), 0
    obs = envs.reset(seed=args.seed)[0].astype(np.float32)
    q_numpy = NumpyQ(q_network, probe_obs=obs)

    while global_step < args.total_timesteps:
        # --- act: epsilon-greedy behaviour policy ---
        exploration_steps = args.exploration_fraction * args.total_timesteps
        epsilon = linear_schedule(args.start_e, args.end_e, exploration_steps, global_step)
        if global_step < args.learning_starts:
            actions = rng.integers(0, num_actions, args.num_envs)  # before learning: uniformly random play
        else:  # plain torch: q_values = q_network(torch.as_tensor(obs)).numpy()
            actions = epsilon_greedy(q_numpy(obs), epsilon, rng)
        raw_obs, reward, terminated, truncated, info = envs.step(actions)
        done = terminated | truncated
        previous_step, global_step = global_step, global_step + args.num_envs

        # --- store: s' is the true final obs at an episode end; only termination stops the bootstrap ---
        buffer.add(obs, true_next_obs(raw_obs, done, info), actions, reward, terminated)
        obs = raw_obs.astype(np.float32)

        # --- episode statistics: undiscounted return ---
        episode_returns += reward
        episode_lengths += 1
        for i in np.flatnonzero(done):
            recent_returns.append(episode_returns[i])
            print(f"global_step={global_step}, episodic_return={episode_returns[i]:.2f}")
            if args.track:
                wandb.log({"global_step": global_step, "charts/episodic_return": episode_returns[i],
                           "charts/episodic_length": episode_lengths[i]})
        episode_returns[done], episode_lengths[done] = 0.0, 0
        if global_step < args.learning_starts:
            continue

        # --- update: gradient_steps steps every train_frequency env steps (num_envs arrive at a time) ---
        training_rounds = global_step // args.train_frequency - previous_step // args.train_frequency
        if args.anneal_lr:  # lr_t = lr * (1 - t/T)
            optimizer.param_groups[0]["lr"] = args.learning_rate * (1.0 - global_step / args.total_timesteps)
        for _ in range(training_rounds * args.gradient_steps):
            b_obs, b_actions, b_rewards, b_next_obs, b_terminated = (
                torch.from_numpy(x).to(device) for x in buffer.sample(args.batch_size))
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
            q_numpy.refresh()

        # --- target network: theta_target <- tau*theta + (1 - tau)*theta_target, every target-network-frequency ---
        if global_step // args.target_network_frequency > previous_step // args.target_network_frequency:
            with torch.no_grad():
                for target_param, param in zip(target_network.parameters(), q_network.parameters()):
                    target_param.lerp_(param, args.tau)

        # --- logging ---
        if global_step // 1000 > previous_step // 1000:
            sps = int(global_step / (time.time() - start_time))
            mean_return = float(np.mean(recent_returns)) if recent_returns else float("nan")
            if global_step // 10_000 > previous_step // 10_000:
                print(f"global_step={global_step}, SPS={sps}, mean_return_last10={mean_return:.2f}, eps={epsilon:.3f}")
            if args.track and gradient_steps > 0:
                wandb.log({"global_step": global_step, "losses/td_loss": loss.item(), "charts/SPS": sps,
                           "losses/q_values": q_taken.mean().item(), "charts/epsilon": epsilon})

    envs.close()
    result = {"env_id": args.env_id, "global_step": global_step,
              "mean_return_last10": float(np.mean(recent_returns)) if recent_returns else float("nan"),
              "final_epsilon": epsilon, "gradient_steps": gradient_steps,
              "sps": int(global_step / (time.time() - start_time)), "wall_seconds": round(time.time() - start_time, 2)}
    if args.save_model:  # tensors and plain types only (see evaluate)
        result["model_path"] = path = f"runs/{run_name}/{args.exp_name}.pt"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.save({"model": q_network.cpu().state_dict(), "args": asdict(args)}, path)
        result["eval_mean_return"] = float(np.mean(evaluate(path, args.eval_episodes, args.seed, args.eval_epsilon)))
    if args.track:
        wandb.finish()
    return result


if __name__ == "__main__":
    try:
        print(json.dumps(main(tyro.cli(Args))))
    except UsageError as e:
        raise SystemExit(f"{os.path.basename(__file__)}: error: {e}")
