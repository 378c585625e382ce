"""A reader's usual edits, made to a copy of each classic script alone in an empty folder: a
LayerNorm after the first linear layer, GELU in place of every activation, hidden width 256, and
RMSprop in place of Adam. Each copy runs with default args and seed 1 on CartPole-v1; the table
says whether it ran to the end, whether its mean of 10 reached 475, where it ended, and how the
saved greedy policy evaluates.

    python benchmarks/reader_edits.py --out benchmarks/results/reader_edits.md
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ["reinforce.py", "actor_critic.py", "dqn.py", "ppo.py"]
# (edit, script) -> the lines replaced: what a reader would type in the copied file
EDITS = {
    "layernorm": {
        "dqn.py": [
            (
                "nn.Linear(obs_dim, hidden),",
                "nn.Linear(obs_dim, hidden),\n            nn.LayerNorm(hidden),",
            )
        ],
        "*": [
            (
                "layer_init(nn.Linear(in_dim, hidden)),",
                "layer_init(nn.Linear(in_dim, hidden)),\n        nn.LayerNorm(hidden),",
            )
        ],
    },
    "gelu": {"dqn.py": [("nn.ReLU()", "nn.GELU()")], "*": [("nn.Tanh()", "nn.GELU()")]},
    "width256": {
        "dqn.py": [("hidden=128", "hidden=256")],
        "*": [("hidden=64", "hidden=256")],
    },
    "rmsprop": {"*": [("torch.optim.Adam(", "torch.optim.RMSprop(")]},
}
EPISODE = re.compile(r"^global_step=(\d+), episodic_return=([-+0-9.eE]+)$", re.M)


def edited_copy(script: str, edit: str, folder: str) -> str:
    source = open(os.path.join(REPO, script)).read()
    for old, new in EDITS[edit].get(script, EDITS[edit]["*"]):
        count = source.count(old)
        if count == 0:
            raise SystemExit(f"reader_edits.py: error: {script} has no `{old}` to edit")
        source = source.replace(old, new)
    path = os.path.join(folder, script)
    with open(path, "w") as f:
        f.write(source)
    return path


def run(script: str, edit: str, threshold: float) -> dict:
    folder = tempfile.mkdtemp(prefix=f"{edit}_")
    path = edited_copy(script, edit, folder)
    cmd = [sys.executable, path, "--seed", "1", "--save-model"]
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    shutil.rmtree(folder)
    steps_returns = [(int(s), float(r)) for s, r in EPISODE.findall(proc.stdout)]
    returns = [r for _, r in steps_returns]
    means = [np.mean(returns[i - 10 : i]) for i in range(10, len(returns) + 1)]
    reached = next((steps_returns[i + 9][0] for i, m in enumerate(means) if m >= threshold), None)
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if proc.returncode == 0 else {}
    error = proc.stderr.strip().splitlines()[-1] if proc.returncode else ""
    return {
        "script": script,
        "edit": edit,
        "exit": proc.returncode,
        "error": error,
        "best": max(means) if means else None,
        "reached_at": reached,
        "final": result.get("mean_return_last10"),
        "eval": result.get("eval_mean_return"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threshold", type=float, default=475.0)
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time")
    parser.add_argument("--out", default=None, help="markdown file to write")
    opts = parser.parse_args()
    jobs = [(script, edit) for edit in EDITS for script in SCRIPTS]
    with ThreadPoolExecutor(opts.jobs) as pool:
        rows = list(pool.map(lambda job: run(*job, opts.threshold), jobs))
    lines = [
        f"command: `python benchmarks/reader_edits.py --jobs {opts.jobs}`",
        "",
        "| script | edit | exit code | best mean10 | steps to 475 | final mean10 | eval |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r["script"], r["edit"], r["exit"], r["best"], r["reached_at"], r["final"]]
        cells = [("-" if c is None else f"{c:g}" if isinstance(c, float) else c) for c in cells]
        cells.append("-" if r["eval"] is None else f"{r['eval']:g}")
        error = f" {r['error']}" if r["error"] else ""
        lines.append("| " + " | ".join(str(c) for c in cells) + " |" + error)
    print("\n".join(lines))
    if opts.out:
        with open(opts.out, "w") as f:
            f.write("# A reader's edits, each in a copy of the script (seed 1, default args)\n\n")
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
