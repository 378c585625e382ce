"""DQN: deep Q-learning (Mnih et al. 2015) with Double DQN (van Hasselt et al. 2016).

The off-policy chapter, for discrete actions: learn Q(s, a) by regressing it on the Bellman
target y = r + gamma * max_a' Q_target(s', a') over transitions from a replay buffer. The data
come from a behaviour policy (epsilon-greedy on Q), the policy learned is greedy: the max in y
is why no importance ratio is needed. A target network, a slow copy of Q, keeps y from chasing Q.

    python dqn.py --env-id CartPole-v1
    python dqn.py --env-id CartPole-v1 --no-double-dqn --loss huber  # nearer Mnih et al.
"""

import json
import os
import pickle
import signal
import time
from dataclasses import asdict, dataclass
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from gymnasium.wrappers import RecordVideo
from gymnasium.wrappers.vector import RecordEpisodeStatistics


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment (part of the run name)"""
    seed: int = 1
    """seed of the experiment (torch, numpy and the environments)"""
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
    save_replay_buffer: bool = False
    """if toggled, checkpoints hold the replay buffer; else a resumed run refills it"""
    resume: str | None = None
    """a checkpoint to continue; its settings: the flags' defaults"""
    eval_checkpoint: str | None = None
    """a saved model to evaluate instead of training"""
    eval_episodes: int = 10
    """the number of episodes of that evaluation"""
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
    """the target network's update: theta_targ <- tau*theta + (1 - tau)*theta_targ"""
    target_network_frequency: int = 4
    """the number of env steps between target network updates"""
    batch_size: int = 128
    """the transitions sampled per gradient step"""
    start_e: float = 1.0
    """the behaviour policy's epsilon at the start"""
    end_e: float = 0.01
    """the behaviour policy's final epsilon"""
    exploration_fraction: float = 0.1
    """the fraction of the run for epsilon to go from start-e to end-e"""
    learning_starts: int = 2_000
    """transitions in the buffer (random play at first) before learning starts"""
    train_frequency: int = 4
    """env steps between training rounds (the behaviour policy fixed in between)"""
    gradient_steps: int = 1
    """gradient steps per training round (SB3's `gradient_steps`)"""
    double_dqn: bool = True
    """if toggled, Double DQN: the online net picks argmax_a' Q(s', a')"""
    loss: Literal["huber", "mse"] = "mse"
    """the regression loss on the TD error: `mse`, or `huber` (smooth L1)"""
    max_grad_norm: float = 10.0
    """the maximum norm for gradient clipping"""


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
    if not isinstance(action_space, gym.spaces.Discrete):
        raise UsageError(f"DQN needs discrete actions; {env_id} has {action_space}; use ppo.py")
    # info["episode"] at an episode's end; return_queue: the `last` returns
    return RecordEpisodeStatistics(envs, buffer_length=last)


def true_next_obs(obs, done, info):
    """s': info["final_obs"] where an episode ended, else the obs returned"""
    next_obs = obs.copy()
    if done.any():  # final_obs holds None for the other envs
        next_obs[done] = np.stack(info["final_obs"][done])
    return next_obs


# --- the network: Q(s, .) for all actions at once ---
class QNetwork(nn.Sequential):
    def __init__(self, obs_dim, num_actions, hidden=128):
        super().__init__(
            nn.Linear(obs_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_actions),
        )


# --- acting: epsilon-greedy on Q ---
def epsilon_greedy(q_values, epsilon, rng):
    """The behaviour policy: a random action with probability epsilon, else argmax_a Q(s,a)"""
    greedy = q_values.argmax(-1).cpu().numpy()
    explore = rng.random(len(greedy)) < epsilon
    random_actions = rng.integers(0, q_values.shape[-1], len(greedy))
    return np.where(explore, random_actions, greedy)


def linear_schedule(start_e, end_e, duration, t):
    """epsilon_t = start_e + (end_e - start_e) * min(t / duration, 1)"""
    return start_e + (end_e - start_e) * min(t / max(duration, 1), 1.0)


# --- the replay buffer: a preallocated numpy ring ---
COLUMNS = ["obs", "next_obs", "actions", "rewards", "terminated"]


class ReplayBuffer:
    """The last `capacity` transitions (s, a, r, s', terminated), sampled uniformly"""

    def __init__(self, capacity, obs_dim, rng):
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
        """Store a transition per env, overwriting the oldest once full."""
        rows = (self.pos + np.arange(len(obs))) % self.capacity
        self.obs[rows] = obs
        self.next_obs[rows] = next_obs
        self.actions[rows] = actions
        self.rewards[rows] = rewards
        self.terminated[rows] = terminated
        self.pos = (self.pos + len(obs)) % self.capacity
        self.size = min(self.size + len(obs), self.capacity)

    def sample(self, batch_size, device):
        """batch_size transitions drawn uniformly: s, a, r, s', terminated"""
        rows = self.rng.integers(0, self.size, batch_size)
        columns = [self.obs, self.actions, self.rewards, self.next_obs, self.terminated]
        return [torch.as_tensor(column[rows], device=device) for column in columns]

    def state_dict(self):
        """The rows stored, as tensors, and where the next one goes"""
        rows = {k: torch.from_numpy(getattr(self, k)[: self.size]) for k in COLUMNS}
        return {"pos": self.pos, "size": self.size, **rows}

    def load_state_dict(self, state):
        for name in COLUMNS:
            getattr(self, name)[: state["size"]] = state[name].numpy()
        self.pos = state["pos"]
        self.size = state["size"]


# --- the math: the Bellman target ---
def td_target(rewards, terminated, next_q_target, gamma, next_q_online=None):
    """The Bellman optimality target, from Q(s', .) of the target (and online) network.

    DQN:        y = r + gamma * (1 - terminated) * max_a' Q_target(s', a')
    Double DQN: y = r + gamma * (1 - terminated) * Q_target(s', argmax_a' Q_online(s', a'))

    Only termination removes the bootstrap: a transition cut by a time limit still has a
    future, and Q_target(s', .) estimates it.
    """
    if next_q_online is None:
        next_value = next_q_target.max(-1).values
    else:  # the online net picks a', the target net values it: less max-bias
        best = next_q_online.argmax(-1, keepdim=True)
        next_value = next_q_target.gather(-1, best).squeeze(-1)
    return rewards + gamma * (1.0 - terminated) * next_value


def main(args: Args) -> dict:
    checkpoint = load_checkpoint(args.resume) if args.resume else {}
    check_args(args, checkpoint)
    if args.eval_checkpoint:  # evaluate a saved model instead of training
        path, epsilon = args.eval_checkpoint, args.eval_epsilon
        return evaluate(path, args.eval_episodes, args.seed, epsilon, args.capture_video)
    run_name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    run_name = checkpoint.get("run_name", run_name)
    path = args.resume or f"runs/{run_name}/{args.exp_name}.pt"
    envs = make_envs(args.env_id, args.num_envs, args.capture_video, run_name)
    wandb = start_wandb(args, run_name, checkpoint) if args.track else None

    # --- seeding: torch (weights), numpy (exploring, replay), the envs ---
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    torch.set_num_threads(1)  # small networks (benchmarks/README.md)
    device = torch.device("cuda" if args.cuda else "cpu")
    obs_dim = envs.single_observation_space.shape[0]
    num_actions = int(envs.single_action_space.n)
    q_network = QNetwork(obs_dim, num_actions).to(device)
    target_network = QNetwork(obs_dim, num_actions).to(device)
    target_network.load_state_dict(q_network.state_dict())
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate, foreach=True)
    buffer = ReplayBuffer(args.buffer_size, obs_dim, rng)
    global_step = checkpoint.get("global_step", 0)
    gradient_steps = checkpoint.get("gradient_steps", 0)
    if checkpoint:  # continue the saved run; the envs start anew
        load_model(q_network, checkpoint["model"], path)
        target_network.load_state_dict(checkpoint["target_model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        torch.set_rng_state(checkpoint["torch_rng"])
        rng.bit_generator.state = checkpoint["numpy_rng"]
        print(f"resuming {run_name} at global_step={global_step}")
        if checkpoint["replay_buffer"] is not None:
            buffer.load_state_dict(checkpoint["replay_buffer"])
        else:
            print(f"no replay buffer saved: learning waits {args.learning_starts} new steps")

    start_step, start_time = global_step, time.time()
    obs, _ = envs.reset(seed=args.seed + global_step)
    obs = obs.astype(np.float32)
    exploration_steps = args.exploration_fraction * args.total_timesteps
    loss = None  # before this run's first gradient step
    STOP.clear()
    while global_step < args.total_timesteps and not STOP:
        previous_step = global_step
        # --- act: the epsilon-greedy behaviour policy ---
        epsilon = linear_schedule(args.start_e, args.end_e, exploration_steps, global_step)
        if global_step < args.learning_starts:  # before learning: random play
            actions = rng.integers(0, num_actions, args.num_envs)
        else:
            with torch.no_grad():  # acting needs no gradient
                q_values = q_network(torch.as_tensor(obs, device=device))
            actions = epsilon_greedy(q_values, epsilon, rng)
        raw_obs, reward, terminated, truncated, info = envs.step(actions)
        done = terminated | truncated
        global_step += args.num_envs

        # --- store: s' is the true last obs; only termination stops the bootstrap ---
        buffer.add(obs, true_next_obs(raw_obs, done, info), actions, reward, terminated)
        obs = raw_obs.astype(np.float32)
        for i in np.flatnonzero(done):  # its raw return
            log_episode(wandb, global_step, info["episode"]["r"][i])

        # --- update: gradient_steps steps every train_frequency env steps ---
        rounds = global_step // args.train_frequency - previous_step // args.train_frequency
        if buffer.size < args.learning_starts:  # too few transitions yet
            rounds = 0
        if args.anneal_lr:  # lr_t = lr * (1 - t/T), t: env steps
            for group in optimizer.param_groups:
                group["lr"] = args.learning_rate * (1 - global_step / args.total_timesteps)
        for _ in range(rounds * args.gradient_steps):
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
        frequency = args.target_network_frequency
        if global_step // frequency > previous_step // frequency:
            with torch.no_grad():
                pairs = zip(target_network.parameters(), q_network.parameters(), strict=True)
                for target_param, param in pairs:
                    target_param.lerp_(param, args.tau)

        # --- logging: every 1,000 env steps ---
        sps = int((global_step - start_step) / (time.time() - start_time))
        if global_step // 10_000 > previous_step // 10_000:
            mean10 = mean_return(envs.return_queue)
            print(f"global_step={global_step}, SPS={sps}, mean_return_last10={mean10}")
        if args.track and global_step // 1000 > previous_step // 1000:
            metrics = {
                "global_step": global_step,
                "charts/SPS": sps,
                "charts/epsilon": epsilon,
            }
            if loss is not None:  # once this run has taken a gradient step
                metrics["losses/td_loss"] = loss.item()
                metrics["losses/q_values"] = q_taken.mean().item()
            wandb.log(metrics)

        # --- checkpoint: every --save-every steps; at the end; at a stop ---
        every = args.save_every
        save_now = every and global_step // every > previous_step // every
        last = global_step >= args.total_timesteps or STOP
        if save_now or (last and (every or args.save_model)):
            checkpoint = {
                "model": q_network.state_dict(),
                "target_model": target_network.state_dict(),
                "optimizer": optimizer.state_dict(),
                "replay_buffer": buffer.state_dict() if args.save_replay_buffer else None,
                "args": asdict(args),
                "run_name": run_name,
                "global_step": global_step,
                "gradient_steps": gradient_steps,
                "torch_rng": torch.get_rng_state(),
                "numpy_rng": rng.bit_generator.state,
                "wandb_id": wandb.run.id if wandb else None,
            }
            save_checkpoint(path, checkpoint)
    envs.close()
    result = {"global_step": global_step, "sps": sps, "stopped": STOP[0] if STOP else None}
    result["mean_return_last10"] = mean_return(envs.return_queue)
    result["gradient_steps"] = gradient_steps
    if STOP and os.path.isfile(path):  # with --save-every or --save-model
        print(f"stopped; resume: python {os.path.basename(__file__)} --resume {path}")
    elif args.save_model:
        result.update(evaluate(path, args.eval_episodes, args.seed, args.eval_epsilon))
        result["model_path"] = path
    if wandb:
        wandb.finish()
    return result


# --- plumbing: checks, logging, checkpoints, evaluation ---
def check_args(args, checkpoint):
    """Refuse settings that cannot work, with a line that says what to do."""
    sizes = ["total_timesteps", "num_envs", "buffer_size", "batch_size", "train_frequency"]
    for name in [*sizes, "gradient_steps", "target_network_frequency", "eval_episodes"]:
        if getattr(args, name) <= 0:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must be positive, got {getattr(args, name)}")
    if not 0.0 <= args.gamma <= 1.0:
        raise UsageError(f"--gamma must be in [0, 1], got {args.gamma}")
    if not args.batch_size <= args.learning_starts <= args.buffer_size:
        raise UsageError("--learning-starts must be in [--batch-size, --buffer-size]")
    for name in ["tau", "exploration_fraction", "start_e", "end_e", "eval_epsilon"]:
        if not 0.0 <= getattr(args, name) <= 1.0:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must be in [0, 1], got {getattr(args, name)}")
    if args.save_every < 0:
        raise UsageError(f"--save-every must be 0 or more, got {args.save_every}")
    if args.cuda and not torch.cuda.is_available():
        raise UsageError("--cuda: torch sees no CUDA device; drop --cuda")
    saved = vars(checkpoint.get("args", args))  # what cannot change on resume
    for name in ["env_id", "buffer_size"]:
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
def evaluate(path, eval_episodes=10, seed=0, epsilon=0.0, capture_video=False) -> dict:
    """The saved Q's returns, epsilon-greedy (greedy by default)"""
    checkpoint = load_checkpoint(path)
    saved = checkpoint["args"]
    envs = make_envs(saved.env_id, 1, capture_video, f"{saved.exp_name}-eval", eval_episodes)
    q_network = QNetwork(envs.single_observation_space.shape[0], int(envs.single_action_space.n))
    load_model(q_network, checkpoint["model"], path)
    rng = np.random.default_rng(seed)
    obs, _ = envs.reset(seed=seed)
    while len(envs.return_queue) < eval_episodes:
        q_values = q_network(torch.as_tensor(obs, dtype=torch.float32))
        obs, *_ = envs.step(epsilon_greedy(q_values, epsilon, rng))
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
