"""Stop a run with Ctrl-C partway, resume it from its checkpoint, and report how it ends.

    python benchmarks/resume_run.py --stop-at 500000 --out benchmarks/results/x.md -- \
        ppo.py --env-id Hopper-v5 --total-timesteps 1000000 ...

The run starts with `--save-every <stop-at>`; once it prints a global step at or past --stop-at,
it gets a SIGINT (it finishes its iteration, saves and exits with 130, printing the command that
resumes it); then that command continues it to the end. Reported: the step it stopped at, the
final mean of the last 100 episodes (all of them in the resumed part, on long runs), the JSON.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(command: list, stop_at: int | None = None):
    """Run to the end, or until a global step >= stop_at is printed, then SIGINT it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env)
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if stop_at is not None and line.startswith("global_step="):
            step = int(line.split(",")[0].split("=")[1])
            if step >= stop_at and process.poll() is None:
                process.send_signal(signal.SIGINT)
                stop_at = None  # once
    process.wait()
    return process.returncode, lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stop-at", type=int, required=True)
    parser.add_argument("--out")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = [sys.executable] + [c for c in args.command if c != "--"]
    start = time.time()
    code, first = run(command + ["--save-every", str(args.stop_at)], args.stop_at)
    stopped = [line for line in first if line.startswith("stopped; resume:")]
    assert code == 130 and stopped, f"exit status {code}; last line: {first[-1]}"
    checkpoint = stopped[0].split("--resume ")[1]
    stop_step = json.loads(first[-1])["global_step"]
    code, second = run(command[:2] + ["--resume", checkpoint])
    assert code == 0, f"the resumed run failed: {second[-1]}"
    returns = [
        float(line.split("episodic_return=")[1]) for line in second if "episodic_return=" in line
    ]
    mean100 = sum(returns[-100:]) / len(returns[-100:])
    result = json.loads(second[-1])
    text = "\n".join(
        [
            f"command: `python benchmarks/resume_run.py --stop-at {args.stop_at} -- "
            f"{' '.join(args.command[1:] if args.command[0] == '--' else args.command)}`",
            "",
            f"- stopped (SIGINT) at global_step {stop_step}: {stopped[0]}",
            f"- resumed: {[line for line in second if line.startswith('resuming')][0]}",
            f"- final: global_step {result['global_step']}, mean of the last 100 episodes "
            f"{mean100:.1f} ({len(returns)} episodes in the resumed part), saved policy evaluates "
            f"{result.get('eval_mean_return')}",
            f"- wall time, both parts: {time.time() - start:.0f} s",
            "",
            f"final JSON: `{second[-1]}`",
        ]
    )
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
