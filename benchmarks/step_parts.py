"""Where one env step of ppo.py goes at CleanRL's MuJoCo flags, part by part, on this CPU.

Issue 31 asked for 2x CleanRL's SPS on HalfCheetah-v5 in plain torch. This splits the cost that
plain torch leaves into its parts, each timed alone (1 torch thread, validate_args off, as ppo.py):
- the eager minibatch step (ppo.py's Agent and losses, through `compile_step.loss_fn`): the loss's
  forward, `zero_grad` + backward, `clip_grad_norm_`, and Adam's step three ways: single-tensor,
  `foreach=True` (ppo.py) and `fused=True` (not every optimizer accepts `fused`: RMSprop does not);
- the vector env's step with random actions (SyncVectorEnv, SAME_STEP autoreset, episode
  statistics), bare, with gymnasium's vector `ClipAction` (ppo.py) and with `np.clip` applied by a
  vector `TransformAction`;
- acting: `agent.dist(obs).sample()` under `no_grad` for one env.
At CleanRL's flags (2,048 steps, 10 epochs, 32 minibatches) every env step carries 320 / 2,048 =
0.156 minibatch steps; the last table turns the parts into microseconds per env step.

    python benchmarks/step_parts.py --out benchmarks/results/ppo_step_parts.md
"""

import argparse
import os
import sys
import time

import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers.vector import ClipAction, RecordEpisodeStatistics, TransformAction

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compile_step  # noqa: E402  (ppo.py's Agent and loss at CleanRL's sizes)

MINIBATCH_STEPS_PER_ENV_STEP = 10 * 32 / 2048
ADAMS = {"single-tensor": {"foreach": False}, "foreach=True (ppo.py)": {"foreach": True}}
ADAMS["fused=True"] = {"fused": True}


def per_call(fns, calls, blocks=7, warmup=200):
    """{name: fn}: the median over blocks of the microseconds per call of each fn, the blocks of
    the fns alternated (the machine's drift falls on all alike)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(blocks):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - start) / calls * 1e6)
    return {name: float(np.median(t)) for name, t in times.items()}


def update_parts(calls):
    torch.manual_seed(0)
    agent, optimizer, data = compile_step.make(17, 6, 64)
    params = list(agent.parameters())

    def backward():
        loss = compile_step.loss_fn(agent, *data)
        optimizer.zero_grad()
        loss.backward()

    fns = {
        "loss forward": lambda: compile_step.loss_fn(agent, *data),
        "loss forward + zero_grad + backward": backward,
        "clip_grad_norm_": lambda: torch.nn.utils.clip_grad_norm_(params, 0.5),
    }
    for name, kwargs in ADAMS.items():
        fns[f"Adam step, {name}"] = torch.optim.Adam(params, lr=1e-12, eps=1e-5, **kwargs).step
    return per_call(fns, calls)


def env_parts(calls):
    def make(wrap):
        envs = gym.vector.SyncVectorEnv(
            [lambda: gym.make("HalfCheetah-v5")], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
        )
        space = envs.single_action_space
        if wrap == "ClipAction (ppo.py)":
            envs = ClipAction(envs)
        if wrap == "np.clip":
            envs = TransformAction(envs, lambda a: np.clip(a, space.low, space.high))
        envs = RecordEpisodeStatistics(envs)
        envs.reset(seed=0)
        return envs

    rng = np.random.default_rng(0)
    actions = rng.normal(size=(1, 6)).astype(np.float32)
    fns = {f"env step, {wrap}": make(wrap) for wrap in ["bare", "ClipAction (ppo.py)", "np.clip"]}
    fns = {name: lambda e=envs: e.step(actions) for name, envs in fns.items()}
    torch.manual_seed(0)
    agent = compile_step.make(17, 6, 64)[0]
    obs = torch.as_tensor(rng.normal(size=(1, 17)).astype(np.float32))

    def act():
        with torch.no_grad():
            return agent.dist(obs).sample().numpy()

    fns["acting: dist(obs).sample(), 1 env"] = act
    return per_call(fns, calls)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls per timed block")
    parser.add_argument("--out")
    opts = parser.parse_args()
    torch.set_num_threads(1)
    torch.distributions.Distribution.set_default_validate_args(False)
    parts = {**update_parts(opts.calls), **env_parts(opts.calls)}
    parts["zero_grad + backward"] = (
        parts.pop("loss forward + zero_grad + backward") - parts["loss forward"]
    )
    lines = [
        "# ppo.py's step at CleanRL's MuJoCo flags, part by part (benchmarks/step_parts.py)",
        "",
        f"`python benchmarks/step_parts.py --calls {opts.calls}`; torch {torch.__version__},"
        " 1 thread; each part alone, median of 7 blocks alternated with the other parts of its"
        " table. Minibatch parts at HalfCheetah's sizes (17 obs, 6 actions, minibatches of 64);"
        " env parts: HalfCheetah-v5, one env.",
        "",
        "| part | us per call |",
        "|---|---|",
    ]
    lines += [f"| {name} | {us:,.0f} |" for name, us in parts.items()]
    minibatch = sum(parts[k] for k in ["loss forward", "zero_grad + backward", "clip_grad_norm_"])
    k = MINIBATCH_STEPS_PER_ENV_STEP
    lines += [
        "",
        f"Per env step at CleanRL's flags ({k:.3f} minibatch steps each):",
        "",
        "| item | us per env step |",
        "|---|---|",
    ]
    for name in ADAMS:
        lines.append(
            f"| the update, Adam {name} | {(minibatch + parts[f'Adam step, {name}']) * k:,.0f} |"
        )
    for name in [n for n in parts if n.startswith(("env step", "acting"))]:
        lines.append(f"| {name} | {parts[name]:,.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if opts.out:
        with open(opts.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
