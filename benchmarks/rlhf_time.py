"""Whole-process time and peak memory of the default `python ppo_rlhf_toy.py`: this working tree's
against an earlier commit's, run alternately, one process at a time, on the same machine.

    python benchmarks/rlhf_time.py --old 1c01885 --runs 3
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(folder: str) -> tuple:
    """Seconds and peak RSS (MB) of one default run in folder, and its final JSON."""
    start = time.time()
    proc = subprocess.Popen(
        [sys.executable, "ppo_rlhf_toy.py"], cwd=folder, stdout=subprocess.PIPE, text=True
    )
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # the child's own peak RSS
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"ppo_rlhf_toy.py failed in {folder}")
    return time.time() - start, usage.ru_maxrss / 1024, json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--old", required=True, help="the earlier commit")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args()
    old = tempfile.mkdtemp()
    archive = subprocess.run(
        ["git", "archive", args.old], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", old], input=archive, check=True)
    times = {"old": [], "new": []}
    lines = [
        "# ppo_rlhf_toy.py: the default run, this version against an earlier one",
        "",
        f"command: `python benchmarks/rlhf_time.py {' '.join(sys.argv[1:])}`",
        "",
        f"`python ppo_rlhf_toy.py` with default arguments, commit {args.old} (old) and this "
        "working tree (new), alternately, one process at a time; whole-process wall seconds "
        "and peak RSS.",
        "",
        "| run | version | seconds | peak RSS MB | gold gain (SFT std) |",
        "|---|---|---|---|---|",
    ]
    for i in range(args.runs):
        for name, folder in [("old", old), ("new", ROOT)]:
            seconds, rss, result = run(folder)
            times[name].append((seconds, rss))
            gain = result["gold_gain_in_sft_std"]
            lines.append(f"| {i + 1} | {name} | {seconds:.1f} | {rss:.0f} | {gain:+.3f} |")
            print(lines[-1], flush=True)
    old_s = np.median([s for s, _ in times["old"]])
    new_s = np.median([s for s, _ in times["new"]])
    lines += [
        "",
        f"Median: old {old_s:.1f} s, new {new_s:.1f} s, new / old = {new_s / old_s:.2f}; "
        f"peak RSS at most {max(r for _, r in times['new']):.0f} MB (new), "
        f"{max(r for _, r in times['old']):.0f} MB (old).",
    ]
    path = os.path.join(args.out, "ppo_rlhf_toy_time.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines[-1:]))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
