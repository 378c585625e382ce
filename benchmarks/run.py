"""Benchmark an rlref script over several seeds: how many env steps and how many whole-process wall
seconds until the mean of the last 10 episodic returns first reaches a threshold, the best and the
final mean of 10, the saved policy's evaluation (with --save-model), SPS, and (in the same run) the
env-only stepping rate of the same vector env with random actions, so SPS can be quoted as a
fraction of that limit.

    python benchmarks/run.py ppo.py --threshold 475 --seeds 1 2 3 4 5 \
        -- --env-id CartPole-v1 --save-model
    python benchmarks/run.py ppo.py --threshold 475 \
        --compare "benchmarks/peers.py --algo sb3-ppo" -- --save-model

Everything after `--` is passed to the script unchanged. `--compare CMD` (repeatable) runs another
command the same way, seed by seed interleaved with the script (seed 1 of each, then seed 2 of
each...), so that the machine's drift over minutes falls on both alike. Seeds run one after another
so that they do not compete for the 2 cores; `--jobs 2` runs two at a time, for long runs whose
learning, not their seconds, is the figure (the env-only rate is then not measured). Prints plain
tables and writes one markdown file (default: benchmarks/results/<script>_<env>_<time>.md).
"""

import argparse
import importlib.util
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tyro

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPISODE = re.compile(r"^global_step=(\d+), episodic_return=([-+0-9.eE]+|nan)")
PROGRESS_SPS = re.compile(r"SPS=(\d+)")


def load_script(path: str):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def env_only_rate(module, env_id: str, num_envs: int, seconds: float) -> float:
    """Random actions through the script's own vector env: the steps/s no agent can beat."""
    envs = module.make_envs(env_id, num_envs)
    envs.reset(seed=0)
    envs.action_space.seed(0)
    actions = [envs.action_space.sample() for _ in range(1000)]
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for a in actions:
            envs.step(a)
        steps += len(actions) * num_envs
    rate = steps / (time.perf_counter() - start)
    envs.close()
    return rate


def run_seed(
    script: str, seed: int, passthrough: list, threshold, stop_at_threshold: bool, timeout: float
) -> dict:
    """Run one seed as its own process; the clock starts before the interpreter does."""
    cmd = [sys.executable, script, "--seed", str(seed)] + passthrough
    recent, last100 = deque(maxlen=10), deque(maxlen=100)
    out = {
        "seed": seed,
        "steps_to_threshold": None,
        "seconds_to_threshold": None,
        "sps": None,
        "final_mean": None,
        # curve: (env step, process seconds, return)
        "best_mean": None,
        "final_mean100": None,
        "curve": [],
    }
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    last_line = ""
    for line in proc.stdout:
        line = line.strip()
        if time.perf_counter() - start > timeout:
            proc.kill()
            # the figures are then from a shorter run
            out["error"] = f"stopped by --timeout after {timeout:.0f} s"
            break
        m = EPISODE.match(line)
        if m:
            out["curve"].append(
                (int(m.group(1)), round(time.perf_counter() - start, 3), float(m.group(2)))
            )
            recent.append(float(m.group(2)))
            last100.append(float(m.group(2)))
            if len(recent) == 10:
                out["best_mean"] = max(out["best_mean"] or -np.inf, float(np.mean(recent)))
            if (
                threshold is not None
                and out["steps_to_threshold"] is None
                and len(recent) == 10
                and np.mean(recent) >= threshold
            ):
                out["steps_to_threshold"] = int(m.group(1))
                out["seconds_to_threshold"] = round(time.perf_counter() - start, 2)
                if stop_at_threshold:
                    proc.kill()
                    break
            continue
        sps = PROGRESS_SPS.search(line)
        if sps:
            out["sps"] = int(sps.group(1))
        if line:
            last_line = line
    proc.wait()
    out["process_seconds"] = round(time.perf_counter() - start, 2)
    # the figure CleanRL and rl-zoo report for MuJoCo: the last 100 training episodes
    if len(last100) == 100:
        out["final_mean100"] = float(np.mean(last100))
    if last_line.startswith("{"):
        result = json.loads(last_line)
        out["sps"] = result.get("sps", out["sps"])
        out["final_mean"] = result.get("mean_return_last10")
        # with --save-model: the saved policy's evaluation
        out["eval_mean"] = result.get("eval_mean_return")
    elif recent:
        out["final_mean"] = float(np.mean(recent))
    if proc.returncode not in (0, -9) and out["final_mean"] is None and "error" not in out:
        out["error"] = f"exit code {proc.returncode}: {last_line}"
    return out


def fmt(x):
    if x is None:
        return "-"
    if isinstance(x, float) and not x.is_integer():
        return f"{x:.3f}" if abs(x) < 1 else f"{x:.2f}"  # 3 decimals for the SPS fraction
    return str(int(x)) if isinstance(x, float) else str(x)


def table(rows: list, med: dict, keys: list, header: list) -> list:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["seed"]] + [r.get(k) for k in keys]
        lines.append(
            "| "
            + " | ".join(fmt(c) for c in cells)
            + " |"
            + (f" {r['error']}" if "error" in r else "")
        )
    lines.append("| **median** | " + " | ".join(fmt(med[k]) for k in keys) + " |")
    return lines


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("script", help="the script to run, e.g. ppo.py")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument(
        "--threshold", type=float, default=None, help="target for the mean of the last 10 returns"
    )
    parser.add_argument(
        "--stop-at-threshold",
        action="store_true",
        help="end each seed once it reaches the threshold",
    )
    parser.add_argument(
        "--env-only-seconds", type=float, default=3.0, help="how long to measure the env-only rate"
    )
    parser.add_argument(
        "--timeout", type=float, default=7200.0, help="seconds after which a seed is killed"
    )
    parser.add_argument(
        "--compare", action="append", default=[], help="another command (quoted) to run per seed"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="seeds run at a time (>1: seconds are not comparable)"
    )
    parser.add_argument(
        "--label", default="", help="a name for this configuration in the markdown file"
    )
    parser.add_argument("--out", default=None, help="markdown file to write")
    parser.add_argument(
        "--curves",
        default=None,
        help="folder for one CSV per run (step, seconds, return), for plot.py",
    )
    argv = sys.argv[1:]
    passthrough = []
    if "--" in argv:
        passthrough = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    opts = parser.parse_args(argv)

    script = os.path.join(REPO, opts.script)
    module = load_script(script)
    script_args = tyro.cli(module.Args, args=passthrough)
    # reinforce.py plays one episode per env: its number of envs is --num-episodes
    num_envs = (
        script_args.num_envs if hasattr(script_args, "num_envs") else script_args.num_episodes
    )
    # The env-only rate is measured again right before each seed: this VM's speed drifts by
    # 10-20% over minutes, and a rate taken minutes earlier would carry that drift into SPS / env-
    # only.
    configs = [(opts.script, passthrough)] + [
        (shlex.split(c)[0], shlex.split(c)[1:]) for c in opts.compare
    ]

    def one_run(seed_and_config):
        seed, i = seed_and_config
        path, extra = configs[i]
        measure = i == 0 and opts.jobs == 1
        env_rate = (
            env_only_rate(module, script_args.env_id, num_envs, opts.env_only_seconds)
            if measure
            else None
        )
        row = run_seed(
            os.path.join(REPO, path),
            seed,
            extra,
            opts.threshold,
            opts.stop_at_threshold,
            opts.timeout,
        )
        row["env_only"] = round(env_rate) if env_rate else None
        row["sps_fraction"] = round(row["sps"] / env_rate, 3) if row["sps"] and env_rate else None
        return i, row

    order = [(seed, i) for seed in opts.seeds for i in range(len(configs))]  # interleaved
    rows = {i: [] for i in range(len(configs))}
    with ThreadPoolExecutor(opts.jobs) as pool:
        for i, row in pool.map(one_run, order):
            rows[i].append(row)
            if opts.curves:  # e.g. ppo_CartPole-v1_s1.csv, sb3-a2c_CartPole-v1_s1.csv
                path, extra = configs[i]
                name = (
                    extra[extra.index("--algo") + 1]
                    if "--algo" in extra
                    else os.path.basename(path)[:-3]
                )
                os.makedirs(opts.curves, exist_ok=True)
                with open(
                    os.path.join(opts.curves, f"{name}_{script_args.env_id}_s{row['seed']}.csv"),
                    "w",
                ) as f:
                    f.write(
                        "step,seconds,return\n"
                        + "".join(f"{a},{b},{c}\n" for a, b, c in row["curve"])
                    )

    def median(config_rows, key):
        values = [r.get(key) for r in config_rows if r.get(key) is not None]
        return statistics.median(values) if values else None

    keys = [
        "steps_to_threshold",
        "seconds_to_threshold",
        "best_mean",
        "final_mean",
        "final_mean100",
        "eval_mean",
        "sps",
        "process_seconds",
        "env_only",
        "sps_fraction",
    ]
    header = [
        "seed",
        "steps to thr",
        "s to thr",
        "best mean10",
        "final mean10",
        "final mean100",
        "eval mean (saved policy)",
        "SPS",
        "process s",
        "env-only steps/s",
        "SPS / env-only",
    ]
    text, meds = [], []
    for i, (path, extra) in enumerate(configs):
        med = {k: median(rows[i], k) for k in keys}
        meds.append(med)
        reached = sum(r["steps_to_threshold"] is not None for r in rows[i])
        command = f"python {path} " + " ".join(extra)
        summary = [
            f"`{command}`: env {script_args.env_id}; threshold {opts.threshold}; "
            f"seeds reaching it: {reached}/{len(rows[i])}"
        ]
        m100 = [r["final_mean100"] for r in rows[i] if r["final_mean100"] is not None]
        if m100:  # as CleanRL publishes MuJoCo results: mean +- std over seeds
            spread = f"{np.mean(m100):.0f} +- {np.std(m100):.0f}"
            summary.append(f"final mean100 over seeds: {spread} ({len(m100)} seeds)")
        if i == 0 and med["env_only"]:
            summary.append(
                "env-only rate (random actions, same vector env, measured before each seed): "
                f"median {med['env_only']:,.0f} steps/s; "
                f"median SPS / env-only = {fmt(med['sps_fraction'])}"
            )
        if i > 0 and meds[0]["seconds_to_threshold"] and med["seconds_to_threshold"]:
            ratio = meds[0]["seconds_to_threshold"] / med["seconds_to_threshold"]
            summary.append(f"median s to threshold, {opts.script} / this: {ratio:.2f}")
        text += summary + [""] + table(rows[i], med, keys, header) + [""]
    command = f"python benchmarks/run.py {opts.script} "
    command += f"--threshold {opts.threshold:g} " if opts.threshold is not None else ""
    command += (
        ("--stop-at-threshold " if opts.stop_at_threshold else "")
        + "--seeds "
        + " ".join(map(str, opts.seeds))
    )
    command += f" --jobs {opts.jobs}" if opts.jobs > 1 else ""
    command += "".join(f" --compare {shlex.quote(c)}" for c in opts.compare)
    command += (" -- " + " ".join(passthrough)) if passthrough else ""
    text = [f"command: `{command}`", ""] + text
    print("\n".join(text))

    out = opts.out or os.path.join(
        REPO,
        "benchmarks",
        "results",
        f"{os.path.basename(opts.script)[:-3]}_{script_args.env_id}_{time.strftime('%Y%m%d-%H%M%S')}.md",
    )
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(f"# {opts.label or opts.script} on {script_args.env_id}\n\n" + "\n".join(text))
    print(f"wrote {os.path.relpath(out, REPO)}")


if __name__ == "__main__":
    main()
