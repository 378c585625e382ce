"""The RLHF frontier of ppo_rlhf_toy.py: gold score against KL to the SFT policy, for PPO
(`--advantage gae`), RLOO and GRPO at several betas and seeds, with best-of-n from the SFT policy
(n = 1, 2, 4, ...) as the reference.

    python benchmarks/rlhf_frontier.py --seeds 1 2 3 --methods gae rloo grpo \
        --betas 0.03 0.1 0.3 --jobs 2
    python benchmarks/rlhf_frontier.py --seeds 1 2 3 --methods gae --betas 0 --label beta0_200 \
        -- --rm-num-pairs 200
    python benchmarks/rlhf_frontier.py --from-json benchmarks/results/rlhf_A.json \
        benchmarks/results/rlhf_B.json

Each run is one process (`python ppo_rlhf_toy.py --seed S --advantage M --beta B ...`); everything
after `--` is passed to every run. Writes a markdown table (mean +- std over seeds: gold gain in SFT
standard deviations, gold, proxy and KL at the end, wall seconds and peak memory of the process),
the best-of-n table, the evaluation history (gold, proxy and KL every `--eval-every` updates), and,
with matplotlib (benchmarks/requirements.txt), a PNG of gold against sqrt(KL). Wall seconds are
comparable only between runs of one invocation with `--jobs 1`.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = {"gae": "PPO (GAE, value model)", "rloo": "RLOO", "grpo": "GRPO"}


def run_one(seed: int, method: str, beta: float, extra: list, best_of_n: int) -> dict:
    """One run of ppo_rlhf_toy.py; its final JSON plus the process's wall seconds and peak RSS."""
    cmd = [
        sys.executable,
        os.path.join(ROOT, "ppo_rlhf_toy.py"),
        "--seed",
        str(seed),
        "--advantage",
        method,
        "--beta",
        str(beta),
        "--best-of-n",
        str(best_of_n),
        *extra,
    ]
    start = time.time()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    )
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # the child's own resource usage: its peak RSS
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out[-2000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(
        seed=seed,
        advantage=method,
        beta=beta,
        process_seconds=time.time() - start,
        peak_rss_mb=usage.ru_maxrss / 1024,
    )
    print(
        f"seed={seed} {method} beta={beta}: gain {result['gold_gain_in_sft_std']:.2f} sft-std, "
        f"kl {result['final']['kl']:.2f}, {result['process_seconds']:.0f} s",
        flush=True,
    )
    return result


def mean_std(values) -> str:
    values = np.asarray(values, float)
    return f"{values.mean():.3f} +- {values.std():.3f}"


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument(
        "--methods", nargs="+", default=["gae", "rloo", "grpo"], choices=list(NAMES)
    )
    parser.add_argument("--betas", type=float, nargs="+", default=[0.03, 0.1, 0.3])
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs at a time (>1: seconds are not comparable)"
    )
    parser.add_argument(
        "--best-of-n", type=int, default=64, help="the largest n, drawn in one run per seed"
    )
    parser.add_argument("--label", default="frontier", help="names the output files")
    parser.add_argument("--out-dir", default=os.path.join(ROOT, "benchmarks", "results"))
    parser.add_argument(
        "--from-json", nargs="+", help="tabulate and plot these earlier runs (of --seeds, --betas)"
    )
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)

    # seeds outermost, so that a stopped benchmark has every configuration for its first seeds
    configs = [(s, m, b) for s in args.seeds for m in args.methods for b in args.betas]
    # one run per seed draws best-of-n
    first = {s: (s, args.methods[0], args.betas[0]) for s in args.seeds}
    if args.from_json:
        results = [
            r
            for path in args.from_json
            for r in json.load(open(path))
            if r["seed"] in args.seeds
            and r["beta"] in args.betas
            and r["advantage"] in args.methods
        ]
    else:
        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(
                pool.map(lambda c: run_one(*c, extra, args.best_of_n * (first[c[0]] == c)), configs)
            )

    command = " ".join(["python benchmarks/rlhf_frontier.py", *sys.argv[1:]])
    lines = [
        f"# ppo_rlhf_toy.py: gold against KL ({args.label})",
        "",
        f"command: `{command}`",
        "",
        "Mean +- std over seeds; gold and proxy on the held-out prompts after the last update; "
        "KL is the sequence-level KL(pi || SFT); gain = (gold - SFT gold) / std of SFT's gold "
        "scores.",
        "",
        "| method | beta | seeds | gold gain (SFT std) | gold | proxy | KL | wall s "
        "| peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    groups = {}
    for r in results:
        groups.setdefault((r["advantage"], r["beta"]), []).append(r)
    for (method, beta), rs in groups.items():
        cells = [mean_std([r["gold_gain_in_sft_std"] for r in rs])]
        cells += [
            mean_std([r["final"][k] for r in rs]) for k in ["gold_score", "proxy_score", "kl"]
        ]
        cells += [
            f"{np.median([r['process_seconds'] for r in rs]):.0f}",
            f"{max(r['peak_rss_mb'] for r in rs):.0f}",
        ]
        lines.append(f"| {NAMES[method]} | {beta} | {len(rs)} | " + " | ".join(cells) + " |")
    # one per seed: every run of a seed has its SFT
    sft = list({r["seed"]: r["sft"] for r in results}.values())
    sft_gold, sft_proxy = (
        mean_std([s["gold_score"] for s in sft]),
        mean_std([s["proxy_score"] for s in sft]),
    )
    lines += ["", f"SFT: gold {sft_gold}, proxy {sft_proxy}"]
    bon_by_seed = {}  # the longest best-of-n curve of each seed (the same SFT model draws them all)
    for r in results:
        if len(r["best_of_n"]) > len(bon_by_seed.get(r["seed"], [])):
            bon_by_seed[r["seed"]] = r["best_of_n"]
    bon = list(bon_by_seed.values())
    lines += (
        [
            "",
            "Best-of-n from the SFT policy (the proxy picks; KL = log n - (n-1)/n):",
            "",
            "| n | gold | proxy | KL |",
            "|---|---|---|---|",
        ]
        if bon
        else []
    )
    for i in range(min(len(b) for b in bon) if bon else 0):
        gold, proxy = mean_std([b[i]["gold"] for b in bon]), mean_std([b[i]["proxy"] for b in bon])
        lines.append(f"| {bon[0][i]['n']} | {gold} | {proxy} | {bon[0][i]['kl']:.3f} |")
    lines += [
        "",
        "Evaluation history (mean over seeds); update: gold / proxy / KL / unseen bigrams "
        "/ top response share",
        "",
    ]
    for (method, beta), rs in groups.items():
        points = []
        for i, h in enumerate(rs[0]["history"]):
            m = {
                k: np.mean([r["history"][i][k] for r in rs])
                for k in ["gold_score", "proxy_score", "kl", "unseen_bigrams", "top_response_share"]
            }
            points.append(
                f"{h['update']}: {m['gold_score']:.3f} / {m['proxy_score']:.2f} / {m['kl']:.2f} / "
                f"{m['unseen_bigrams']:.2f} / {m['top_response_share']:.2f}"
            )
        lines.append(f"- {NAMES[method]}, beta {beta}: " + "; ".join(points))
    lines += [
        "",
        "Samples after the last update (first 3 held-out prompts, seed "
        + str(args.seeds[0])
        + "):",
        "",
    ]
    for r in results:
        if r["seed"] == args.seeds[0]:
            lines.append(
                f"- {NAMES[r['advantage']]}, beta {r['beta']}: " + " / ".join(r["final"]["samples"])
            )
    os.makedirs(args.out_dir, exist_ok=True)
    md = os.path.join(args.out_dir, f"rlhf_{args.label}.md")
    with open(md, "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out_dir, f"rlhf_{args.label}.json"), "w") as f:
        json.dump(results, f)
    print("\n".join(lines))
    print(f"wrote {md}")
    sft_gold = {r["seed"]: r["sft"]["gold_score"] for r in results}
    plot(groups, bon_by_seed, sft_gold, os.path.join(args.out_dir, f"rlhf_{args.label}.png"))


def plot(groups: dict, bon_by_seed: dict, sft_gold: dict, path: str):
    """Gold (minus the seed's SFT gold: each seed is another toy language) against sqrt(KL):
    one line per method through its betas, and the best-of-n curve."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib (pip install -r benchmarks/requirements.txt): no PNG")
        return
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    if bon_by_seed:
        n_rows = min(len(b) for b in bon_by_seed.values())
        kl = np.array([row["kl"] for row in next(iter(bon_by_seed.values()))[:n_rows]])
        gain = np.array(
            [[b[i]["gold"] - sft_gold[s] for s, b in bon_by_seed.items()] for i in range(n_rows)]
        )
        ax.errorbar(
            np.sqrt(kl),
            gain.mean(1),
            yerr=gain.std(1),
            color="black",
            marker="s",
            ms=4,
            capsize=2,
            label=f"best-of-n from SFT (n = 1..{2 ** (n_rows - 1)})",
        )
    for method in NAMES:
        points = sorted((beta, rs) for (m, beta), rs in groups.items() if m == method)
        if not points:
            continue
        x = [np.mean([np.sqrt(max(r["final"]["kl"], 0.0)) for r in rs]) for _, rs in points]
        gains = [[r["final"]["gold_score"] - sft_gold[r["seed"]] for r in rs] for _, rs in points]
        ax.errorbar(
            x,
            [np.mean(g) for g in gains],
            yerr=[np.std(g) for g in gains],
            marker="o",
            capsize=2,
            label=NAMES[method],
        )
        for (beta, _), xi, g in zip(points, x, gains, strict=True):
            ax.annotate(
                f"beta={beta:g}",
                (xi, np.mean(g)),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=7,
            )
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xlabel("sqrt(KL to the SFT policy), nats")
    ax.set_ylabel("gold score minus SFT's (held-out prompts)")
    ax.set_title("ppo_rlhf_toy.py: gold against KL (mean +- std over seeds)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
