"""Speed levers of ppo.py, each measured alone in one run (issue 31).

Each lever is a text edit made to a copy of ppo.py as it was at `--base` (before the levers); the
copies, the working tree's ppo.py ("kept": the levers kept) and optionally CleanRL's
`ppo_continuous_action.py` (`--cleanrl PATH`, ported to gymnasium 1.x by the edits in `CLEANRL`)
run one at a time, alternated `--reps` times, with the same flags. The table gives each run's SPS
as the script reports it (its loop's seconds, compile time included), the median against the
base's, and the process's SPS (wall seconds, start-up included).

    python benchmarks/levers.py --reps 2 --cleanrl ../cleanrl/cleanrl/ppo_continuous_action.py \
        --out benchmarks/results/ppo_levers_halfcheetah.md -- --env-id HalfCheetah-v5 --num-envs 1 \
        --num-steps 2048 --learning-rate 3e-4 --update-epochs 10 --num-minibatches 32 --ent-coef 0 \
        --total-timesteps 20480
    python benchmarks/levers.py --reps 3 --out benchmarks/results/ppo_levers_cartpole.md
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NORMALIZER = "class Normalizer:"
UPDATE_RMS = '''def update_rms(rms, x):
    """rms.update(x), a batch x; one row (one env) has variance 0: no np.var"""
    rms.update_from_moments(x.mean(0), x.var(0) if len(x) > 1 else 0.0, len(x))


'''
THREADS = "    torch.set_num_threads(1)  # small networks: see benchmarks/README.md\n"
ADAM = "lr=args.learning_rate, eps=1e-5)"
OPTIMIZER_LINE = re.compile(r"(    optimizer = torch\.optim\.Adam\(.*\n)")
# lever -> (old, new) edits of the base file
LEVERS = {
    "one-env normalization update": [
        (NORMALIZER, UPDATE_RMS + NORMALIZER),
        ("self.obs_rms.update(raw_obs)", "update_rms(self.obs_rms, raw_obs)"),
        (
            "self.return_rms.update(self.discounted_return)",
            "update_rms(self.return_rms, self.discounted_return)",
        ),
    ],
    "no distribution validate_args": [
        (
            THREADS,
            THREADS + "    torch.distributions.Distribution.set_default_validate_args(False)\n",
        )
    ],
    "Adam foreach=True": [(ADAM, "lr=args.learning_rate, eps=1e-5, foreach=True)")],
    "torch.compile of both MLPs": [
        (
            "    normalizer = Normalizer(obs_dim, args",
            "    for net in (agent.actor, agent.critic):\n"
            "        net.forward = torch.compile(net.forward)\n"
            "    normalizer = Normalizer(obs_dim, args",
        )
    ],
}
# CleanRL's ppo_continuous_action.py under gymnasium 1.x, without tensorboard (a no-op writer)
CLEANRL = [
    (
        "from torch.utils.tensorboard import SummaryWriter",
        "class SummaryWriter:\n    def __init__(self, *a):\n        pass\n\n"
        "    def add_scalar(self, *a):\n        pass\n\n    add_text = add_scalar\n"
        "    close = add_scalar",
    ),
    (
        "TransformObservation(env, lambda obs: np.clip(obs, -10, 10))",
        "TransformObservation(env, lambda obs: np.clip(obs, -10, 10), env.observation_space)",
    ),
]


def edit(source: str, edits: list, name: str) -> str:
    for old, new in edits:
        if source.count(old) != 1:
            raise SystemExit(f"levers.py: error: {name}: `{old[:40]}` is not found once")
        source = source.replace(old, new)
    return source


def run(path: str, flags: list, folder: str) -> dict:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, path, *flags], cwd=folder, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"levers.py: error: {path} failed: {proc.stderr.strip()[-300:]}")
    if path.endswith("ppo.py"):  # its last line: JSON
        last = json.loads(proc.stdout.strip().splitlines()[-1])
        total, reported = last["global_step"], last["sps"]
    else:  # CleanRL runs --total-timesteps exactly here, and prints "SPS: N"
        total = int(flags[flags.index("--total-timesteps") + 1])
        reported = int(re.findall(r"SPS: (\d+)", proc.stdout)[-1])
    return {"seconds": seconds, "sps": total / seconds, "reported_sps": reported}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="056b252", help="the git revision before the levers")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--cleanrl", help="path of CleanRL's ppo_continuous_action.py")
    parser.add_argument("--out", help="markdown file to write")
    parser.add_argument("flags", nargs="*", help="passed to every script (after --)")
    opts = parser.parse_args()
    base = subprocess.run(
        ["git", "show", f"{opts.base}:ppo.py"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    folder = tempfile.mkdtemp(prefix="levers_")
    sources = {f"base ({opts.base})": base}
    sources.update({name: edit(base, edits, name) for name, edits in LEVERS.items()})
    sources["kept (working tree)"] = open(os.path.join(REPO, "ppo.py")).read()
    if opts.cleanrl:
        sources["CleanRL ppo_continuous_action.py"] = edit(open(opts.cleanrl).read(), CLEANRL, "cl")
    paths = {}
    for i, (name, source) in enumerate(sources.items()):
        os.makedirs(os.path.join(folder, str(i)))
        paths[name] = os.path.join(folder, str(i), "cleanrl.py" if "CleanRL" in name else "ppo.py")
        with open(paths[name], "w") as f:
            f.write(source)
    names = list(sources)
    results = {name: [] for name in names}
    for rep in range(opts.reps):  # alternated: the order reverses every repetition
        for name in names if rep % 2 == 0 else names[::-1]:
            flags = opts.flags + (["--no-cuda"] if "CleanRL" in name else [])
            results[name].append(run(paths[name], flags, os.path.dirname(paths[name])))
            print(f"{name}: {results[name][-1]}", flush=True)
    base_sps = np.median([r["reported_sps"] for r in results[names[0]]])
    lines = [
        "# ppo.py's speed levers, each alone (issue 31)",
        "",
        f"command: `python benchmarks/levers.py --reps {opts.reps}"
        + (" --cleanrl PATH" if opts.cleanrl else "")
        + (f" -- {' '.join(opts.flags)}`" if opts.flags else "`"),
        "",
        "Runs one at a time, alternated (the order reverses every repetition). SPS: as each script",
        "reports it at its end (env steps over the seconds since its loop began: compile time",
        "included, start-up not); process SPS: env steps over the whole process's wall seconds.",
        "",
        "| variant | SPS per run | median SPS | / base | process SPS per run | process s per run |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        sps = [r["reported_sps"] for r in results[name]]
        runs = ", ".join(f"{s:,}" for s in sps)
        process = ", ".join(f"{r['sps']:,.0f}" for r in results[name])
        secs = ", ".join(f"{r['seconds']:.1f}" for r in results[name])
        median = np.median(sps)
        ratio = median / base_sps
        lines.append(f"| {name} | {runs} | {median:,.0f} | {ratio:.2f} | {process} | {secs} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if opts.out:
        with open(opts.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
