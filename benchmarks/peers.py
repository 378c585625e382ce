"""Peers for the benchmarks: Stable-Baselines3 with rl-baselines3-zoo's published hyperparameters,
printing what the rlref scripts print (`global_step=N, episodic_return=R` per finished episode, a
JSON last line), so that benchmarks/run.py measures both the same way.

    pip install -r benchmarks/requirements.txt
    python benchmarks/peers.py --algo sb3-ppo --env-id CartPole-v1 --seed 1
    python benchmarks/peers.py --algo sb3-a2c --env-id Acrobot-v1 --seed 1

Only the (algo, env) pairs below are here: each is rl-zoo's entry (hyperparams/<algo>.yml) as
published (checked against rl-baselines3-zoo's master of 2026-04-23). `normalize: true` is rl-zoo's
VecNormalize of observations and rewards (gamma from the entry); the evaluation then uses the
training statistics, frozen, and raw rewards. The printed episodic returns are always the raw ones
(SB3's Monitor sits below VecNormalize).
"""

import argparse
import json
import time

import numpy as np

START = time.time()

# rl-baselines3-zoo, hyperparams/{ppo,a2c,dqn}.yml ("lin_" means linearly decayed to 0 over the run;
# n_envs 1 unless
# the entry says otherwise, as in rl-zoo)
ZOO = {
    ("sb3-ppo", "CartPole-v1"): dict(
        n_envs=8,
        n_timesteps=100_000,
        policy="MlpPolicy",
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        ent_coef=0.0,
        learning_rate="lin_1e-3",
        clip_range="lin_0.2",
    ),
    ("sb3-ppo", "Acrobot-v1"): dict(
        normalize=True,
        n_envs=16,
        n_timesteps=1_000_000,
        policy="MlpPolicy",
        n_steps=256,
        gae_lambda=0.94,
        gamma=0.99,
        n_epochs=4,
        ent_coef=0.0,
    ),
    ("sb3-a2c", "CartPole-v1"): dict(
        n_envs=8, n_timesteps=500_000, policy="MlpPolicy", ent_coef=0.0
    ),
    ("sb3-a2c", "Acrobot-v1"): dict(
        normalize=True, n_envs=16, n_timesteps=500_000, policy="MlpPolicy", ent_coef=0.0
    ),
    ("sb3-dqn", "CartPole-v1"): dict(
        n_timesteps=50_000,
        policy="MlpPolicy",
        learning_rate=2.3e-3,
        batch_size=64,
        buffer_size=100_000,
        learning_starts=1000,
        gamma=0.99,
        target_update_interval=10,
        train_freq=256,
        gradient_steps=128,
        exploration_fraction=0.16,
        exploration_final_eps=0.04,
        policy_kwargs=dict(net_arch=[256, 256]),
    ),
    ("sb3-dqn", "Acrobot-v1"): dict(
        n_timesteps=100_000,
        policy="MlpPolicy",
        learning_rate=6.3e-4,
        batch_size=128,
        buffer_size=50_000,
        learning_starts=0,
        gamma=0.99,
        target_update_interval=250,
        train_freq=4,
        gradient_steps=-1,
        exploration_fraction=0.12,
        exploration_final_eps=0.1,
        policy_kwargs=dict(net_arch=[256, 256]),
    ),
}


def linear(start: float):
    return lambda progress_remaining: progress_remaining * start  # SB3 passes 1 -> 0 over the run


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--algo", choices=sorted({a for a, _ in ZOO}), default="sb3-ppo")
    parser.add_argument("--env-id", default="CartPole-v1")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--total-timesteps", type=int, default=None, help="default: rl-zoo's n_timesteps"
    )
    parser.add_argument(
        "--eval-episodes", type=int, default=10, help="greedy evaluation of the final policy"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: faster for SB3 too on this machine)",
    )
    args = parser.parse_args()
    if (args.algo, args.env_id) not in ZOO:
        raise SystemExit(
            f"peers.py: error: no rl-zoo entry here for {args.algo} on {args.env_id}; add it to ZOO"
        )

    import torch
    from stable_baselines3 import A2C, DQN, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    if args.threads:
        torch.set_num_threads(args.threads)
    hp = dict(ZOO[(args.algo, args.env_id)])
    n_envs, normalize = hp.pop("n_envs", 1), hp.pop("normalize", False)
    total = args.total_timesteps or hp["n_timesteps"]
    hp.pop("n_timesteps")
    for key in ("learning_rate", "clip_range"):
        if isinstance(hp.get(key), str) and hp[key].startswith("lin_"):
            hp[key] = linear(float(hp[key][4:]))
    recent = []

    class PrintEpisodes(BaseCallback):
        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                # SB3's Monitor wrapper: the undiscounted return of a finished episode
                if "episode" in info:
                    recent.append(info["episode"]["r"])
                    episodic_return = info["episode"]["r"]
                    print(
                        f"global_step={self.num_timesteps}, episodic_return={episodic_return:.2f}",
                        flush=True,
                    )
            return True

    envs = make_vec_env(args.env_id, n_envs=n_envs, seed=args.seed)
    eval_env = make_vec_env(args.env_id, n_envs=1, seed=args.seed + 100)
    if normalize:
        envs = VecNormalize(envs, gamma=hp.get("gamma", 0.99))
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False)
    model = {"sb3-ppo": PPO, "sb3-a2c": A2C, "sb3-dqn": DQN}[args.algo](
        env=envs, seed=args.seed, device="cpu", **hp
    )
    start = time.time()
    model.learn(total_timesteps=total, callback=PrintEpisodes())
    wall = time.time() - start
    if normalize:
        eval_env.obs_rms = envs.obs_rms  # the training statistics, frozen (training=False)
    eval_returns, _ = evaluate_policy(
        model,
        eval_env,
        n_eval_episodes=args.eval_episodes,
        deterministic=True,
        return_episode_rewards=True,
    )
    print(
        json.dumps(
            {
                "env_id": args.env_id,
                "algo": args.algo,
                "global_step": model.num_timesteps,
                "mean_return_last10": float(np.mean(recent[-10:])),
                "sps": int(model.num_timesteps / wall),
                "wall_seconds": round(wall, 2),
                "eval_mean_return": float(np.mean(eval_returns)),
            }
        )
    )


if __name__ == "__main__":
    main()
