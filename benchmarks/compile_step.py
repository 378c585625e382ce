"""What torch.compile buys ppo.py's minibatch step on this CPU, and what its compile costs.

Three ways to run PPO-Clip's minibatch step (forward, loss, backward, clipping, Adam), with
ppo.py's own Agent and loss functions, at CleanRL's MuJoCo sizes (HalfCheetah: 17 obs, 6 actions,
minibatches of 64) and at ppo.py's CartPole sizes (4 obs, 2 actions, minibatches of 256):
- eager: as ppo.py runs it;
- networks compiled: `net.forward = torch.compile(net.forward)` for the actor's and the critic's
  MLPs (nanoGPT's `model = torch.compile(model)`, keeping the state_dict's keys);
- loss compiled: the whole loss, from the minibatch's tensors to the scalar, as one compiled
  function (the update written as a function of its own).
It prints the compile seconds (the first two calls) and the microseconds per step after them, and
the number of minibatch steps after which the compiled step has paid for its compile.

    python benchmarks/compile_step.py --out benchmarks/results/ppo_compile_step.md
"""

import argparse
import os
import sys
import time

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import ppo  # noqa: E402

SIZES = {"HalfCheetah (CleanRL's flags)": (17, 6, 64), "CartPole (defaults)": (4, 2, 256)}


def make(obs_dim, action_dim, batch):
    discrete = action_dim == 2
    space = gym.spaces.Discrete(2) if discrete else gym.spaces.Box(-1, 1, (action_dim,), np.float32)
    agent = ppo.Agent(obs_dim, space)
    optimizer = torch.optim.Adam(agent.parameters(), lr=3e-4, eps=1e-5, foreach=True)
    actions = torch.randint(0, 2, (batch,)) if discrete else torch.randn(batch, action_dim)
    data = [torch.randn(batch, obs_dim), actions, torch.randn(batch) - 1.0]
    data += [torch.randn(batch), torch.randn(batch), torch.randn(batch)]
    return agent, optimizer, data


def loss_fn(agent, obs, actions, old_logprobs, advantages, old_values, returns):
    new_dist = agent.dist(obs)
    logratio = new_dist.log_prob(actions) - old_logprobs
    ratio = logratio.exp()
    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    pg_loss = ppo.clip_policy_loss(ratio, advantages, 0.2)
    v_loss = ppo.clipped_value_loss(agent.value(obs), old_values, returns, 0.2)
    return pg_loss - 0.01 * new_dist.entropy().mean() + 0.5 * v_loss


def step(agent, optimizer, data, fn):
    loss = fn(agent, *data)
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(agent.parameters(), 0.5)
    optimizer.step()


def measure(obs_dim, action_dim, batch, way, steps):
    torch.manual_seed(0)
    agent, optimizer, data = make(obs_dim, action_dim, batch)
    fn = loss_fn
    start = time.perf_counter()
    if way == "networks compiled":
        for net in (agent.actor, agent.critic):
            net.forward = torch.compile(net.forward)
    if way == "loss compiled":
        fn = torch.compile(loss_fn)
    step(agent, optimizer, data, fn)
    step(agent, optimizer, data, fn)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        step(agent, optimizer, data, fn)
    return first, (time.perf_counter() - start) / steps * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--out")
    opts = parser.parse_args()
    torch.set_num_threads(1)
    torch.distributions.Distribution.set_default_validate_args(False)
    lines = [
        "# torch.compile and ppo.py's minibatch step (benchmarks/compile_step.py)",
        "",
        f"`python benchmarks/compile_step.py --steps {opts.steps}`; torch {torch.__version__},"
        " 1 thread. First two calls: compile included; then us per step over"
        f" {opts.steps} steps.",
        "",
        "| sizes | way | first two calls, s | us per step | vs eager | steps to pay back |",
        "|---|---|---|---|---|---|",
    ]
    for name, (obs_dim, action_dim, batch) in SIZES.items():
        eager_first, eager = measure(obs_dim, action_dim, batch, "eager", opts.steps)
        rows = [("eager", eager_first, eager)]
        for way in ["networks compiled", "loss compiled"]:
            rows.append((way, *measure(obs_dim, action_dim, batch, way, opts.steps)))
        for way, first, us in rows:
            saved = eager - us
            payback = f"{(first - eager_first) / saved * 1e6:,.0f}" if saved > 0 else "never"
            payback = "-" if way == "eager" else payback
            ratio = f"{us / eager:.2f}"
            lines.append(f"| {name} | {way} | {first:.1f} | {us:,.0f} | {ratio} | {payback} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if opts.out:
        with open(opts.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
