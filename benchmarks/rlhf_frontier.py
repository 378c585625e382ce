"""The RLHF frontier of ppo_rlhf_toy.py: gold score against KL to the SFT policy, for PPO
(`--advantage gae`), RLOO and GRPO at several betas and seeds, with best-of-n from the SFT policy
(n = 1, 2, 4, ...) beside them, and Gao et al. (2022)'s functional forms fitted to both.

    python benchmarks/rlhf_frontier.py --seeds 1 2 3 4 5 --methods gae rloo grpo \
        --betas 0.03 0.1 0.3 0.5 1.0 --label rm2000
    python benchmarks/rlhf_frontier.py --seeds 1 2 3 4 5 --methods gae \
        --betas 0.03 0.1 0.3 0.5 1.0 --label rm500 -- --rm-num-pairs 500
    python benchmarks/rlhf_frontier.py --from-json benchmarks/results/rlhf_rm2000.json \
        benchmarks/results/rlhf_rm500.json --label frontier

Everything after `--` is passed to every run. Each seed is one worker process: it trains that
seed's SFT model and reward model once (`ppo_rlhf_toy.sft_and_reward_model`) and runs every
method and beta on them (`ppo_rlhf_toy.main(args, stages)`, the same result as a separate
`python ppo_rlhf_toy.py` run: tests/test_ppo_rlhf_toy.py checks it). The first run of a seed also
computes best-of-n on all the held-out evaluation prompts. Writes a markdown table (mean +-
standard error over seeds), the fitted coefficients, the JSON of every run and, with matplotlib
(benchmarks/requirements.txt), a PNG of gold against sqrt(KL). Seconds are comparable only
between runs of one invocation with `--jobs 1`.
"""

import argparse
import contextlib
import io
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
NAMES = {"gae": "PPO", "rloo": "RLOO", "grpo": "GRPO"}
COLORS = {"gae": "tab:blue", "rloo": "tab:orange", "grpo": "tab:green"}
MARKERS = ["v", "o", "s", "D", "^", "P"]  # one per beta, smallest first
SIZES = {"gae": 11, "rloo": 7, "grpo": 4}


def run_seed(seed: int, methods: list, betas: list, extra: list, bon: list) -> list:
    """One seed: its stages 1 and 2 once, then every method and beta on them."""
    import tyro

    import ppo_rlhf_toy as toy

    base = tyro.cli(toy.Args, args=["--seed", str(seed), *extra])
    start = time.time()
    with contextlib.redirect_stdout(io.StringIO()):
        stages = toy.sft_and_reward_model(base)
    stage_seconds = time.time() - start
    results = []
    for i, (method, beta) in enumerate((m, b) for m in methods for b in betas):
        args = replace(base, advantage=method, beta=beta, best_of_n=0)
        if i == 0:  # best-of-n once per seed: it depends on SFT and the reward model only
            args = replace(
                args,
                best_of_n=bon[0],
                best_of_n_samples=bon[1],
                best_of_n_prompts=base.eval_prompts,
            )
        start = time.time()
        with contextlib.redirect_stdout(io.StringIO()):
            result = toy.main(args, stages)
        result.update(
            seed=seed,
            advantage=method,
            beta=beta,
            rm_num_pairs=base.rm_num_pairs,
            stage_seconds=stage_seconds,
            run_seconds=time.time() - start,
        )
        print(
            f"seed={seed} rm_pairs={base.rm_num_pairs} {method} beta={beta}: "
            f"gain {result['gold_gain_in_sft_std']:+.2f} sft-std, kl {result['final']['kl']:.2f}, "
            f"{result['run_seconds']:.0f} s",
            flush=True,
        )
        results.append(result)
    return results


def mean_se(values) -> tuple:
    values = np.asarray(values, float)
    se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return values.mean(), se


def fmt(values, digits: int = 2) -> str:
    mean, se = mean_se(values)
    return f"{mean:+.{digits}f} +- {se:.{digits}f}"


def gain(gold: float, result: dict) -> float:
    """Gold minus SFT's on the same held-out prompts, in units of the SFT samples' gold std."""
    return (gold - result["sft"]["gold_score"]) / result["sft"]["gold_std"]


def bon_points(result: dict) -> tuple:
    """Best-of-n's sqrt(KL) and gain (against its own n = 1, the SFT mean of the same samples)."""
    rows = result["best_of_n"]
    d = np.sqrt([r["kl"] for r in rows])
    g = np.array([(r["gold"] - rows[0]["gold"]) / result["sft"]["gold_std"] for r in rows])
    return d, g


def versus_bon(result: dict, bon_of: dict):
    """The run's gain minus its seed's best-of-n gain at the same sqrt(KL) (interpolated on that
    seed's curve); None beyond the largest n or without a best-of-n curve."""
    if (result["seed"], result["rm_num_pairs"]) not in bon_of:
        return None
    d_bon, g_bon = bon_of[result["seed"], result["rm_num_pairs"]]
    d = np.sqrt(max(result["final"]["kl"], 0.0))
    if d > d_bon[-1]:
        return None
    return gain(result["final"]["gold_score"], result) - np.interp(d, d_bon, g_bon)


def fit(d, g, kind: str) -> np.ndarray:
    """Least squares of Gao et al.'s forms (through 0 at d = 0):
    best-of-n: g = d (alpha - beta d);  RL: g = d (alpha - beta log d). Returns (alpha, beta)."""
    d = np.asarray(d, float)
    g = np.asarray(g, float)
    second = d**2 if kind == "bon" else d * np.log(d)
    features = np.stack([d, -second], 1)
    return np.linalg.lstsq(features, g, rcond=None)[0]


def curve(coef, d, kind: str):
    second = d**2 if kind == "bon" else d * np.log(d)
    return coef[0] * d - coef[1] * second


def analyse(results: list, label: str, command: str, out_dir: str):
    rms = sorted({r["rm_num_pairs"] for r in results}, reverse=True)
    lines = [
        f"# ppo_rlhf_toy.py: gold against KL ({label})",
        "",
        f"command: `{command}`",
        "",
        "Mean +- standard error over seeds. Gain: gold on the 512 held-out prompts minus",
        "SFT's on the same prompts, in units of the SFT samples' gold std. KL: sequence-level",
        "KL(pi || SFT), a Monte Carlo estimate (k1, exact log-probs) on the evaluation's 512",
        "samples. Gap: gold on 512 fresh training-side prompts minus gold on the held-out ones,",
        "in gold units (SFT's own gap beside it). Eval SE: the standard error of one evaluation's",
        "gold over its 512 prompts, in SFT std. heldout_overlap: the share of held-out prompts",
        "seen in any training stage.",
        "",
        "| RM pairs | method | beta | seeds | gain (SFT std) | minus best-of-n at its KL | KL "
        "| proxy | gap (policy) | gap (SFT) | eval SE | RM accuracy | heldout_overlap "
        "| s per run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    bon_of = {(r["seed"], r["rm_num_pairs"]): bon_points(r) for r in results if r["best_of_n"]}
    groups = {}
    for r in results:
        groups.setdefault((r["rm_num_pairs"], r["advantage"], r["beta"]), []).append(r)
    for key in sorted(groups, key=lambda k: (-k[0], list(NAMES).index(k[1]), k[2])):
        rs = groups[key]
        versus = [v for v in (versus_bon(r, bon_of) for r in rs) if v is not None]
        if len(versus) == len(rs):
            versus_cell = fmt(versus)
        elif len(versus) >= 2:
            versus_cell = f"{fmt(versus)} ({len(versus)} of {len(rs)} seeds)"
        else:
            versus_cell = f"beyond best-of-n's KL in {len(rs) - len(versus)} of {len(rs)} seeds"
        cells = [
            fmt([gain(r["final"]["gold_score"], r) for r in rs]),
            versus_cell,
            fmt([r["final"]["kl"] for r in rs]),
            fmt([r["final"]["proxy_score"] for r in rs]),
            fmt([r["generalization_gap"] for r in rs], 3),
            fmt([r["sft_generalization_gap"] for r in rs], 3),
            f"{np.mean([r['final']['gold_se'] / r['sft']['gold_std'] for r in rs]):.3f}",
            f"{np.mean([r['rm_accuracy'] for r in rs]):.3f}",
            f"{max(r['heldout_overlap'] for r in rs)}",
            f"{np.median([r['run_seconds'] for r in rs]):.0f}",
        ]
        lines.append(
            f"| {key[0]} | {NAMES[key[1]]} | {key[2]} | {len(rs)} | " + " | ".join(cells) + " |"
        )
    fits = {}
    for rm in rms:
        bon = list(
            {r["seed"]: r for r in results if r["rm_num_pairs"] == rm and r["best_of_n"]}.values()
        )
        if not bon:
            continue
        rows = bon[0]["best_of_n"]
        lines += [
            "",
            f"Best-of-n from SFT, reward model of {rm} pairs: KL exact for the empirical "
            f"distribution of {bon[0].get('bon_samples', '')} SFT samples per prompt "
            "(the bound log n - (n-1)/n beside it):",
            "",
            "| n | seeds | gain (SFT std) | KL (exact) | KL bound | proxy |",
            "|---|---|---|---|---|---|",
        ]
        for i, row in enumerate(rows):
            gains = [bon_points(r)[1][i] for r in bon]
            kls = [r["best_of_n"][i]["kl"] for r in bon]
            proxies = [r["best_of_n"][i]["proxy"] for r in bon]
            lines.append(
                f"| {row['n']} | {len(bon)} | {fmt(gains)} | {fmt(kls, 3)} | "
                f"{row['kl_bound']:.3f} | {fmt(proxies)} |"
            )
        # Gao et al.'s forms, fitted per seed: the coefficients' mean +- SE over seeds
        fits[rm, "bon"] = [fit(*bon_points(r), "bon") for r in bon]
        for method in NAMES:
            rs = [r for r in results if r["rm_num_pairs"] == rm and r["advantage"] == method]
            if len({r["beta"] for r in rs}) < 2:
                continue
            by_seed = {}
            for r in rs:
                by_seed.setdefault(r["seed"], []).append(r)
            points = {
                s: (
                    np.sqrt([max(r["final"]["kl"], 1e-6) for r in v]),
                    [gain(r["final"]["gold_score"], r) for r in v],
                )
                for s, v in by_seed.items()
            }
            fits[rm, method] = [fit(d, g, "rl") for d, g in points.values()]
    lines += [
        "",
        "Gao et al. (2022)'s forms, d = sqrt(KL to SFT), gain in SFT std: best-of-n "
        "g = d (alpha - beta_bon d), RL g = d (alpha - beta_RL log d). Fitted by least squares "
        "to each seed's points (best-of-n: n = 1..64; RL: one point per beta), mean +- standard "
        "error over seeds; the plotted curve uses the mean coefficients.",
        "",
        "| RM pairs | form | seeds | alpha | beta |",
        "|---|---|---|---|---|",
    ]
    for (rm, kind), per_seed in fits.items():
        name = "best-of-n" if kind == "bon" else f"RL, {NAMES[kind]}"
        alphas = [c[0] for c in per_seed]
        betas = [c[1] for c in per_seed]
        lines.append(f"| {rm} | {name} | {len(per_seed)} | {fmt(alphas)} | {fmt(betas)} |")
    lines += [
        "",
        "Evaluation history, mean over seeds; update: gain (SFT std) / KL / proxy / share of the "
        "most common response / share of bigrams the reward model never saw",
        "",
    ]
    for key in sorted(groups, key=lambda k: (-k[0], list(NAMES).index(k[1]), k[2])):
        rs = groups[key]
        points = []
        for i, h in enumerate(rs[0]["history"]):
            mean = {
                name: np.mean([r["history"][i][name] for r in rs])
                for name in ["kl", "proxy_score", "top_response_share", "unseen_bigrams"]
            }
            g = np.mean([gain(r["history"][i]["gold_score"], r) for r in rs])
            points.append(
                f"{h['update']}: {g:+.2f} / {mean['kl']:.2f} / {mean['proxy_score']:.2f} / "
                f"{mean['top_response_share']:.2f} / {mean['unseen_bigrams']:.3f}"
            )
        lines.append(f"- {key[0]} pairs, {NAMES[key[1]]}, beta {key[2]}: " + "; ".join(points))
    first_seed = min(r["seed"] for r in results)
    lines += [
        "",
        f"Samples after the last update (first 3 held-out prompts, seed {first_seed}):",
        "",
    ]
    for r in results:
        if r["seed"] == first_seed:
            samples = " / ".join(r["final"]["samples"])
            lines.append(
                f"- {r['rm_num_pairs']} pairs, {NAMES[r['advantage']]}, beta {r['beta']}: {samples}"
            )
    os.makedirs(out_dir, exist_ok=True)
    md = os.path.join(out_dir, f"rlhf_{label}.md")
    with open(md, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {md}")
    plot(results, fits, rms, os.path.join(out_dir, f"rlhf_{label}.png"))


def plot(results: list, fits: dict, rms: list, path: str):
    """One column per reward model: gain against sqrt(KL), mean +- standard error over seeds;
    below, the same zoomed in where the methods crowd. Best-of-n in black with its fitted curve;
    each method a color (PPO hollow and largest, so that coinciding points all show), each beta a
    marker, with the method's fitted curve."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib (pip install -r benchmarks/requirements.txt): no PNG")
        return
    fig, axes = plt.subplots(2, len(rms), figsize=(5.6 * len(rms), 8.4), squeeze=False)
    for column, rm in enumerate(rms):
        for row, zoom in enumerate([False, True]):
            draw_panel(axes[row][column], results, fits, rm, zoom)
        accuracy = np.mean([r["rm_accuracy"] for r in results if r["rm_num_pairs"] == rm])
        axes[0][column].set_title(f"reward model: {rm} pairs (accuracy {accuracy:.2f})")
        axes[1][column].set_title("the same, zoomed in", fontsize=9)
    for row in range(2):
        axes[row][0].set_ylabel("held-out gold minus SFT's, in SFT std")
    fig.suptitle("ppo_rlhf_toy.py: gold against KL, mean +- standard error over 5 seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


def draw_panel(ax, results: list, fits: dict, rm: int, zoom: bool):
    betas = sorted({r["beta"] for r in results})
    bon = list(
        {r["seed"]: r for r in results if r["rm_num_pairs"] == rm and r["best_of_n"]}.values()
    )
    d_max = 0.0
    if bon:
        d = np.mean([bon_points(r)[0] for r in bon], 0)
        g = np.array([bon_points(r)[1] for r in bon])
        ax.errorbar(
            d,
            g.mean(0),
            yerr=g.std(0, ddof=1) / np.sqrt(len(g)) if len(g) > 1 else None,
            color="black",
            marker="s",
            ms=4,
            ls="none",
            capsize=2,
            label=f"best-of-n, n = 1..{bon[0]['best_of_n'][-1]['n']} (exact KL)",
        )
        d_max = d.max()
    for method in NAMES:
        for j, beta in enumerate(betas):
            rs = [
                r
                for r in results
                if r["rm_num_pairs"] == rm and r["advantage"] == method and r["beta"] == beta
            ]
            if not rs:
                continue
            d = np.sqrt([max(r["final"]["kl"], 0.0) for r in rs])
            g = [gain(r["final"]["gold_score"], r) for r in rs]
            d_max = max(d_max, d.mean())
            ax.errorbar(
                d.mean(),
                np.mean(g),
                xerr=mean_se(d)[1] if len(d) > 1 else None,
                yerr=mean_se(g)[1] if len(g) > 1 else None,
                color=COLORS[method],
                marker=MARKERS[j % len(MARKERS)],
                ms=SIZES[method],
                mfc="none" if method == "gae" else COLORS[method],
                mew=1.5,
                ls="none",
                capsize=2,
            )
    grid = np.linspace(1e-3, d_max * 1.05 + 1e-3, 200)
    for (fit_rm, kind), per_seed in fits.items():
        if fit_rm != rm:
            continue
        coef = np.mean(per_seed, 0)
        name = "best-of-n" if kind == "bon" else NAMES[kind]
        ax.plot(
            grid,
            curve(coef, grid, "bon" if kind == "bon" else "rl"),
            color="black" if kind == "bon" else COLORS[kind],
            ls="--",
            lw=1,
            label=f"fit, {name}: alpha {coef[0]:.2f}, beta {coef[1]:.2f}",
        )
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xlabel("sqrt(KL to SFT), nats^0.5")
    ax.grid(alpha=0.3)
    if zoom:
        ax.set_xlim(-0.05, 1.9)
        ax.set_ylim(-0.6, 1.1)
        return
    for method in NAMES:
        if any(r["rm_num_pairs"] == rm and r["advantage"] == method for r in results):
            filled = "none" if method == "gae" else COLORS[method]
            ax.plot(
                [],
                [],
                color=COLORS[method],
                mfc=filled,
                marker="o",
                ls="none",
                label=f"{NAMES[method]} (Monte Carlo KL)",
            )
    for j, beta in enumerate(betas):
        marker = MARKERS[j % len(MARKERS)]
        ax.plot([], [], color="gray", marker=marker, ls="none", label=f"beta = {beta:g}")
    ax.legend(fontsize=7, loc="lower left")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument(
        "--methods", nargs="+", default=["gae", "rloo", "grpo"], choices=list(NAMES)
    )
    parser.add_argument("--betas", type=float, nargs="+", default=[0.03, 0.1, 0.3, 1.0])
    parser.add_argument("--jobs", type=int, default=1, help="seeds at a time")
    parser.add_argument("--best-of-n", type=int, default=64, help="the largest n")
    parser.add_argument(
        "--best-of-n-samples", type=int, default=512, help="SFT samples per held-out prompt"
    )
    parser.add_argument("--label", default="frontier", help="names the output files")
    parser.add_argument("--out-dir", default=os.path.join(ROOT, "benchmarks", "results"))
    parser.add_argument("--from-json", nargs="+", help="tabulate and plot these earlier runs")
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    command = " ".join(["python benchmarks/rlhf_frontier.py", *argv])
    if args.from_json:
        results = []
        for path in args.from_json:
            with open(path) as f:
                results += json.load(f)
        analyse(results, args.label, command, args.out_dir)
        return
    bon = (args.best_of_n, args.best_of_n_samples)
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [
            pool.submit(run_seed, s, args.methods, args.betas, extra, bon) for s in args.seeds
        ]
        results = [r for f in futures for r in f.result()]
    for r in results:
        r["bon_samples"] = args.best_of_n_samples
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, f"rlhf_{args.label}.json"), "w") as f:
        json.dump(results, f)
    analyse(results, args.label, command, args.out_dir)


if __name__ == "__main__":
    main()
