"""Learning curves from the CSVs that `benchmarks/run.py --curves DIR` writes (one per script
or peer, task and seed): per task, one PNG with two panels, the mean of the last 10 training
returns against env steps (left) and against whole-process seconds (right); per script or peer,
the median over seeds as a line and the min-max over seeds as a band. A seed counts from its
first 10 episodes on. With --rlhf-json, it also redraws the RLHF frontier (rlhf_frontier.png, by
rlhf_frontier.py from the saved runs), so one command makes every figure of the README:

    python benchmarks/plot.py benchmarks/results/curves --out benchmarks/results \
        --rlhf-json benchmarks/results/rlhf_runs.jsonl \
        benchmarks/results/rlhf_grpo_before_issue_30.jsonl
"""

import argparse
import glob
import os
import re
import subprocess
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

NAME = re.compile(r"^(?P<name>.+)_(?P<env>[^_]+)_s(?P<seed>\d+)\.csv$")  # ppo_CartPole-v1_s1.csv


def mean10_curve(path: str, column: str):
    """(x, mean of the last 10 returns) at each episode end from the 10th on; x: step or seconds"""
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)  # columns: step, seconds, return
    if len(data) < 10:
        return np.array([]), np.array([])
    means = np.convolve(data[:, 2], np.ones(10) / 10, mode="valid")  # means[k]: episodes k..k+9
    return data[9:, {"step": 0, "seconds": 1}[column]], means


def on_grid(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The last value at or before each grid point (a finished run keeps its final value);
    NaN before the first."""
    out = np.full(len(grid), np.nan)
    if len(x):
        idx = np.searchsorted(x, grid, side="right") - 1
        out[idx >= 0] = y[idx[idx >= 0]]
    return out


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("curves", help="the folder given to run.py --curves")
    parser.add_argument("--out", default="benchmarks/results", help="folder for curves_<env>.png")
    parser.add_argument(
        "--rlhf-json",
        nargs="+",
        help="saved RLHF runs (rlhf_frontier.py's JSON lines) to redraw the frontier",
    )
    args = parser.parse_args()
    if args.rlhf_json:  # the frontier of the README
        frontier = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rlhf_frontier.py")
        subprocess.run(
            [
                sys.executable,
                frontier,
                "--from-json",
                *args.rlhf_json,
                "--label",
                "frontier",
                "--out-dir",
                args.out,
            ],
            check=True,
        )
    runs = defaultdict(lambda: defaultdict(list))  # env -> name -> [csv paths]
    for path in sorted(glob.glob(os.path.join(args.curves, "*.csv"))):
        m = NAME.match(os.path.basename(path))
        if m:
            runs[m["env"]][m["name"]].append(path)
    for env, by_name in runs.items():
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for ax, column, label in [
            (axes[0], "step", "env steps"),
            (axes[1], "seconds", "whole-process seconds"),
        ]:
            for name, paths in sorted(by_name.items()):
                curves = [mean10_curve(p, column) for p in paths]
                end = max((x[-1] for x, _ in curves if len(x)), default=0)
                grid = np.geomspace(max(end, 2.0) / 1000, max(end, 2.0), 400)
                ys = np.array([on_grid(x, y, grid) for x, y in curves])
                have = ~np.isnan(ys).all(0)
                if not have.any():
                    continue
                (line,) = ax.plot(
                    grid[have], np.nanmedian(ys[:, have], 0), label=f"{name} ({len(paths)} seeds)"
                )
                ax.fill_between(
                    grid[have],
                    np.nanmin(ys[:, have], 0),
                    np.nanmax(ys[:, have], 0),
                    color=line.get_color(),
                    alpha=0.08,
                )
            ax.set_xscale("log")  # the fast scripts and the 500k-step peers on one axis
            ax.set_xlabel(label + " (log scale)")
            ax.set_ylabel("mean of the last 10 returns")
            ax.grid(alpha=0.3)
        axes[0].legend(loc="upper left", fontsize=8)
        fig.suptitle(f"{env}: median over seeds, band = min-max")
        fig.tight_layout()
        out = os.path.join(args.out, f"curves_{env}.png")
        fig.savefig(out, dpi=110)
        plt.close(fig)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
