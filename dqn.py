"""DQN: deep Q-learning (Mnih et al. 2015) with Double DQN (van Hasselt et al. 2016).

The off-policy chapter, for discrete actions. Instead of a policy, learn Q(s, a) by regressing
it on the Bellman optimality target y = r + gamma * max_a' Q_target(s', a') over transitions
drawn from a replay buffer. The data comes from a behaviour policy (epsilon-greedy on Q) while
the target policy being learned is greedy; the max in the target is why that needs no
importance ratio. A target network, a copy of Q updated slowly, keeps y from chasing Q.

    python dqn.py --env-id CartPole-v1
    python dqn.py --env-id CartPole-v1 --no-double-dqn --loss huber  # nearer Mnih et al.
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
import torch.nn.functional as F
import tyro
from gymnasium.wrappers import RecordVideo


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment (part of the run name)"""
    seed: int = 1
    """seed of the experiment (torch, numpy and the environments)"""
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
    save_replay_buffer: bool = False
    """if toggled, checkpoints hold the replay buffer too (large); else a resumed run refills it"""
    resume: str | None = None
    """path of a checkpoint to continue its run from: its settings (flags given replace them),
    model, optimizer and step"""
    eval_checkpoint: str | None = None
    """path of a saved model to evaluate instead of training"""
    eval_episodes: int = 10
    """number of episodes for the evaluation of a saved model"""
    eval_epsilon: float = 0.0
    """epsilon of the evaluation policy (0: greedy)"""

    env_id: str = "CartPole-v1"
    """the id of the gymnasium environment"""
    total_timesteps: int = 70_000
    """total environment steps of the experiment"""
    learning_rate: float = 2e-3
    """the learning rate of the Adam optimizer"""
    anneal_lr: bool = True
    """if toggled, the learning rate decays linearly to 0 over the run"""
    num_envs: int = 4
    """the number of parallel environments"""
    buffer_size: int = 100_000
    """the capacity of the replay buffer, in transitions"""
    gamma: float = 0.99
    """the discount factor gamma"""
    tau: float = 0.02
    """the target network's update rate: theta_target <- tau*theta + (1 - tau)*theta_target"""
    target_network_frequency: int = 4
    """the number of env steps between target network updates"""
    batch_size: int = 128
    """the number of transitions sampled from the replay buffer per gradient step"""
    start_e: float = 1.0
    """the starting epsilon of the epsilon-greedy behaviour policy"""
    end_e: float = 0.01
    """the final epsilon of the epsilon-greedy behaviour policy"""
    exploration_fraction: float = 0.1
    """the fraction of `total-timesteps` over which epsilon goes linearly from start-e to end-e"""
    learning_starts: int = 2_000
    """the number of transitions in the buffer (of random play, at first) before learning starts"""
    train_frequency: int = 4
    """the number of env steps between training rounds; the behaviour policy is fixed in between"""
    gradient_steps: int = 1
    """the number of gradient steps in each training round (SB3's `gradient_steps`)"""
    double_dqn: bool = True
    """if toggled, Double DQN: the online net picks argmax_a' Q(s', a'), the target net values it"""
    loss: Literal["huber", "mse"] = "mse"
    """the regression loss on the TD error: `mse`, or `huber` (smooth L1)"""
    max_grad_norm: float = 10.0
    """the maximum norm for gradient clipping"""


class UsageError(ValueError):
    """A setting the script cannot run with, printed as one line."""


# What a resumed run takes from its checkpoint and cannot change: the env and the network.
FIXED_ON_RESUME = ["exp_name", "seed", "env_id", "num_envs", "buffer_size"]


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
    if not isinstance(action_space, gym.spaces.Discrete):
        raise UsageError(
            f"DQN needs a discrete action space; {env_id} has {action_space}; use ppo.py"
        )
    return envs


def true_next_obs(obs: np.ndarray, done: np.ndarray, info: dict) -> np.ndarray:
    """s' of each env: info["final_obs"] where the episode ended, else the returned obs"""
    if not done.any():
        return obs
    next_obs = obs.copy()
    for i in np.flatnonzero(done):
        next_obs[i] = info["final_obs"][i]
    return next_obs


def check_args(args: Args):
    """Refuse settings that cannot work, with a line that says what to do."""
    positive = ["total_timesteps", "num_envs", "buffer_size", "target_network_frequency"]
    positive += ["batch_size", "train_frequency", "gradient_steps", "eval_episodes"]
    for name in positive:
        value = getattr(args, name)
        if value <= 0:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must be a positive integer, got {value}")
    if not 0.0 <= args.gamma <= 1.0:
        raise UsageError(f"--gamma must be in [0, 1], got {args.gamma}")
    if args.batch_size > args.buffer_size:
        raise UsageError(
            f"--batch-size ({args.batch_size}) is larger than --buffer-size ({args.buffer_size})"
        )
    if args.learning_starts < args.batch_size:
        raise UsageError(
            f"--learning-starts ({args.learning_starts}) is below --batch-size ({args.batch_size})"
        )
    if args.learning_starts > args.buffer_size:
        raise UsageError(
            f"--learning-starts ({args.learning_starts}) exceeds --buffer-size ({args.buffer_size})"
        )
    if args.save_every < 0:
        raise UsageError(f"--save-every must be 0 (never) or positive, got {args.save_every}")
    for name in ["tau", "exploration_fraction"]:
        value = getattr(args, name)
        if not 0.0 < value <= 1.0:
            raise UsageError(f"--{name.replace('_', '-')} must be in (0, 1], got {value}")
    for name in ["start_e", "end_e", "eval_epsilon"]:
        value = getattr(args, name)
        if not 0.0 <= value <= 1.0:
            raise UsageError(f"--{name.replace('_', '-')} must be in [0, 1], got {value}")
    if args.cuda and not torch.cuda.is_available():
        raise UsageError("--cuda was given but torch sees no CUDA device; drop --cuda")


# --- the network: Q(s, .) for all actions at once ---
class QNetwork(nn.Sequential):
    def __init__(self, obs_dim: int, num_actions: int, hidden: int = 128):
        super().__init__(
            nn.Linear(obs_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_actions),
        )


# --- acting: epsilon-greedy on Q ---
def epsilon_greedy(q_values: torch.Tensor, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """The behaviour policy: a random action with probability epsilon, else argmax_a Q(s, a)"""
    greedy = q_values.argmax(-1).cpu().numpy()
    explore = rng.random(len(greedy)) < epsilon
    random_actions = rng.integers(0, q_values.shape[-1], len(greedy))
    return np.where(explore, random_actions, greedy)


def linear_schedule(start_e: float, end_e: float, duration: float, t: int) -> float:
    """epsilon_t = start_e + (end_e - start_e) * min(t / duration, 1)"""
    return start_e + (end_e - start_e) * min(t / duration, 1.0)


# --- the replay buffer: a preallocated numpy ring ---
class ReplayBuffer:
    """Holds the last `capacity` transitions (s, a, r, s', terminated); samples uniformly."""

    def __init__(self, capacity: int, obs_dim: int, rng: np.random.Generator):
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.actions = np.zeros(capacity, np.int64)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.capacity = capacity
        self.pos = 0  # the next row to write
        self.size = 0  # the number of rows stored
        self.rng = rng

    def add(self, obs, next_obs, actions, rewards, terminated):
        """Store a batch of transitions (one per env), overwriting the oldest once full."""
        rows = (self.pos + np.arange(len(obs))) % self.capacity
        self.obs[rows] = obs
        self.next_obs[rows] = next_obs
        self.actions[rows] = actions
        self.rewards[rows] = rewards
        self.terminated[rows] = terminated
        self.pos = (self.pos + len(obs)) % self.capacity
        self.size = min(self.size + len(obs), self.capacity)

    def state_dict(self) -> dict:
        """The rows stored, as tensors, and where the next one goes"""
        state = {"pos": self.pos, "size": self.size}
        for name in ["obs", "next_obs", "actions", "rewards", "terminated"]:
            state[name] = torch.from_numpy(getattr(self, name)[: self.size])
        return state

    def load_state_dict(self, state: dict):
        for name in ["obs", "next_obs", "actions", "rewards", "terminated"]:
            getattr(self, name)[: state["size"]] = state[name].numpy()
        self.pos = state["pos"]
        self.size = state["size"]

    def sample(self, batch_size: int, device: torch.device):
        """batch_size stored transitions, drawn uniformly, as torch tensors"""
        rows = self.rng.integers(0, self.size, batch_size)
        obs = torch.as_tensor(self.obs[rows], device=device)
        actions = torch.as_tensor(self.actions[rows], device=device)
        rewards = torch.as_tensor(self.rewards[rows], device=device)
        next_obs = torch.as_tensor(self.next_obs[rows], device=device)
        terminated = torch.as_tensor(self.terminated[rows], device=device)
        return obs, actions, rewards, next_obs, terminated


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
        best = next_q_online.argmax(-1, keepdim=True)
        next_value = next_q_target.gather(-1, best).squeeze(-1)
    return rewards + gamma * (1.0 - terminated) * next_value


# --- checkpoints: save, load, resume; evaluate a saved model ---
def save_checkpoint(path: str, checkpoint: dict):
    """Write a temporary file, then rename it: a crash while saving never leaves a broken file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save(checkpoint, path + ".tmp")
    os.replace(path + ".tmp", path)


def load_checkpoint(path: str, keys=("model", "args")) -> dict:
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
def evaluate(path: str, eval_episodes=10, seed=0, epsilon=0.0, capture_video=False):
    """The returns of `eval_episodes` episodes, epsilon-greedy (greedy by default) on the saved Q"""
    checkpoint = load_checkpoint(path)
    try:
        saved = Args(**checkpoint["args"])
    except TypeError as e:
        raise UsageError(f"{path}: its args are not this script's ({e})") from None
    envs = make_envs(saved.env_id, 1, capture_video, f"{saved.exp_name}-eval")
    obs_dim = envs.single_observation_space.shape[0]
    q_network = QNetwork(obs_dim, int(envs.single_action_space.n))
    try:
        q_network.load_state_dict(checkpoint["model"])
    except RuntimeError as e:  # a missing layer, a size mismatch
        message = " ".join(str(e).split())
        raise UsageError(f"{path}: the saved model does not fit this QNetwork: {message}") from None
    rng = np.random.default_rng(seed)
    obs, _ = envs.reset(seed=seed)
    returns = []
    episodic_return = 0.0
    while len(returns) < eval_episodes:
        q_values = q_network(torch.as_tensor(obs, dtype=torch.float32))
        obs, reward, terminated, truncated, _ = envs.step(epsilon_greedy(q_values, epsilon, rng))
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
        epsilon = args.eval_epsilon
        returns = evaluate(
            args.eval_checkpoint, args.eval_episodes, args.seed, epsilon, args.capture_video
        )
        return {"eval_returns": returns, "eval_mean_return": float(np.mean(returns))}

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

    # --- seeding: torch (initial weights), numpy (exploration and replay sampling), the envs ---
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    torch.set_num_threads(1)  # the networks are small: see benchmarks/README.md
    device = torch.device("cuda" if args.cuda else "cpu")
    obs_dim = envs.single_observation_space.shape[0]
    num_actions = int(envs.single_action_space.n)
    q_network = QNetwork(obs_dim, num_actions).to(device)
    target_network = QNetwork(obs_dim, num_actions).to(device)
    target_network.load_state_dict(q_network.state_dict())
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate)
    buffer = ReplayBuffer(args.buffer_size, obs_dim, rng)
    global_step = 0
    gradient_steps = 0
    if resume_from is not None:  # where the saved run stopped
        q_network.load_state_dict(resume_from["model"])
        target_network.load_state_dict(resume_from["target_model"])
        optimizer.load_state_dict(resume_from["optimizer"])
        global_step = resume_from["global_step"]
        gradient_steps = resume_from["gradient_steps"]
        torch.set_rng_state(resume_from["torch_rng"])
        rng.bit_generator.state = resume_from["numpy_rng"]
        print(f"resuming {run_name} at global_step={global_step}; the envs start new episodes")
        if resume_from["replay_buffer"] is not None:
            buffer.load_state_dict(resume_from["replay_buffer"])
        else:
            print(f"no replay buffer saved: learning waits for {args.learning_starts} new steps")

    def checkpoint() -> dict:
        """What --resume and --eval-checkpoint need: tensors and plain types only"""
        return {
            "model": {k: v.cpu() for k, v in q_network.state_dict().items()},
            "target_model": {k: v.cpu() for k, v in target_network.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "replay_buffer": buffer.state_dict() if args.save_replay_buffer else None,
            "args": asdict(args),
            "run_name": run_name,
            "global_step": global_step,
            "gradient_steps": gradient_steps,
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": rng.bit_generator.state,
            "wandb_id": wandb.run.id if args.track else None,
        }

    episode_returns = np.zeros(args.num_envs)
    episode_lengths = np.zeros(args.num_envs, np.int64)
    recent_returns = deque(maxlen=10)  # the last 10 episodic returns
    start_step = global_step
    start_time = time.time()
    obs, _ = envs.reset(seed=args.seed + global_step)
    obs = obs.astype(np.float32)
    exploration_steps = args.exploration_fraction * args.total_timesteps
    # Ctrl-C (or a job's SIGTERM) lets the step finish, then the run saves and stops.
    stop = []
    handlers = {
        s: signal.signal(s, lambda signum, frame: stop.append(signum))
        for s in [signal.SIGINT, signal.SIGTERM]
    }

    while global_step < args.total_timesteps:
        # --- act: the epsilon-greedy behaviour policy ---
        epsilon = linear_schedule(args.start_e, args.end_e, exploration_steps, global_step)
        if global_step < args.learning_starts:  # before learning: uniformly random play
            actions = rng.integers(0, num_actions, args.num_envs)
        else:
            with torch.no_grad():  # acting needs no gradient
                q_values = q_network(torch.as_tensor(obs, device=device))
            actions = epsilon_greedy(q_values, epsilon, rng)
        raw_obs, reward, terminated, truncated, info = envs.step(actions)
        done = terminated | truncated
        previous_step = global_step
        global_step += args.num_envs

        # --- store: s' is the true last obs at an episode end; only termination stops bootstrap ---
        buffer.add(obs, true_next_obs(raw_obs, done, info), actions, reward, terminated)
        obs = raw_obs.astype(np.float32)

        # --- episode statistics: undiscounted return ---
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
        # --- update: gradient_steps steps every train_frequency env steps (num_envs at a time) ---
        training_rounds = (
            global_step // args.train_frequency - previous_step // args.train_frequency
        )
        if buffer.size < args.learning_starts:  # too few transitions to learn from yet
            training_rounds = 0
        if args.anneal_lr:  # lr_t = lr * (1 - t/T)
            lr_now = args.learning_rate * (1.0 - global_step / args.total_timesteps)
            for group in optimizer.param_groups:
                group["lr"] = lr_now
        for _ in range(training_rounds * args.gradient_steps):
            b_obs, b_actions, b_rewards, b_next_obs, b_terminated = buffer.sample(
                args.batch_size, device
            )
            with torch.no_grad():
                next_q_target = target_network(b_next_obs)
                next_q_online = q_network(b_next_obs) if args.double_dqn else None
                y = td_target(b_rewards, b_terminated, next_q_target, args.gamma, next_q_online)
            q_values = q_network(b_obs)
            q_taken = q_values.gather(-1, b_actions.unsqueeze(-1)).squeeze(-1)  # Q(s, a), a stored
            if args.loss == "huber":
                loss = F.smooth_l1_loss(q_taken, y)
            else:
                loss = F.mse_loss(q_taken, y)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(q_network.parameters(), args.max_grad_norm)
            optimizer.step()
            gradient_steps += 1

        # --- target network: theta_target <- tau*theta + (1 - tau)*theta_target ---
        if (
            global_step // args.target_network_frequency
            > previous_step // args.target_network_frequency
        ):
            with torch.no_grad():
                pairs = zip(target_network.parameters(), q_network.parameters(), strict=True)
                for target_param, param in pairs:
                    target_param.lerp_(param, args.tau)

        # --- logging ---
        if global_step // 1000 > previous_step // 1000:
            sps = int((global_step - start_step) / (time.time() - start_time))
            mean_return = round(float(np.mean(recent_returns)), 2) if recent_returns else None
            if global_step // 10_000 > previous_step // 10_000:
                print(
                    f"global_step={global_step}, SPS={sps}, mean_return_last10={mean_return}, "
                    f"eps={epsilon:.3f}"
                )
            if args.track and gradient_steps > 0:
                metrics = {
                    "global_step": global_step,
                    "charts/learning_rate": optimizer.param_groups[0]["lr"],
                    "charts/SPS": sps,
                    "charts/epsilon": epsilon,
                    "losses/td_loss": loss.item(),
                    "losses/q_values": q_taken.mean().item(),
                }
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
    mean_return = round(float(np.mean(recent_returns)), 2) if recent_returns else None
    result = {
        "env_id": args.env_id,
        "global_step": global_step,
        "mean_return_last10": mean_return,
        "final_epsilon": epsilon,
        "gradient_steps": gradient_steps,
        "sps": int((global_step - start_step) / (time.time() - start_time)),
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
        returns = evaluate(path, args.eval_episodes, args.seed, args.eval_epsilon)
        result["eval_mean_return"] = float(np.mean(returns))
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
