"""The RLHF frontier of ppo_rlhf_toy.py: held-out gold against KL to the SFT policy for PPO
(`--advantage gae`), RLOO, GRPO and DPO (`--dpo`) at several betas, with best-of-n from SFT
beside them, compared at matched KL and paired by seed, and Gao et al. (2022)'s forms fitted.

    python benchmarks/rlhf_frontier.py --seeds 1 2 3 4 5 6 7 8 9 10 --jobs 16 --out runs.jsonl
    python benchmarks/rlhf_frontier.py --from-json runs.jsonl --label frontier

Every run uses the script's defaults except the method, beta (and DPO's epochs), and
`--eval-every 2` (PPO) or 4 (RLOO, GRPO), so each run is a curve along training (at the default
constant learning rate).
A task is one seed and a list of runs: it trains that seed's SFT model and reward model
(`ppo_rlhf_toy.sft_and_reward_model`) and runs each on them (`ppo_rlhf_toy.main(args, stages)`,
the same result as a separate `python ppo_rlhf_toy.py` run: tests/test_ppo_rlhf_toy.py checks
it). Each finished run is appended as a line to `--out`. Choices (each method's best beta, DPO's
epochs, the default) are made on validation gold; held-out gold only reports.
"""

import argparse
import contextlib
import io
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
NAMES = {"ppo": "PPO", "rloo": "RLOO", "grpo": "GRPO", "dpo": "DPO"}
COLORS = {"ppo": "tab:blue", "rloo": "tab:orange", "grpo": "tab:green", "dpo": "tab:red"}
MARKERS = {"ppo": "o", "rloo": "s", "grpo": "^", "dpo": "D"}
RL_BETAS = [0.1, 0.2, 0.3, 0.5, 1.0]
DPO_BETAS = [0.05, 0.1, 0.2, 0.5, 1.0]
DPO_EPOCHS = [1, 2, 4]


def tasks(seeds: list, ablation: bool = False, early_stopping: bool = False) -> list:
    """(seed, runs) pairs, each run a dict of the Args fields it changes; the slowest first.
    With ablation, only GRPO with the scaling before issue 30; with early_stopping, PPO at beta 0
    evaluated after every update, beside beta 0.5 and 1.0."""
    if early_stopping:
        runs = [{"advantage": "gae", "beta": 0.0, "eval_every": 1}]
        return [(s, runs + [{"advantage": "gae", "beta": b} for b in [0.5, 1.0]]) for s in seeds]
    if ablation:
        return [
            (s, [{"advantage": "grpo", "beta": b, "eval_every": 4} for b in RL_BETAS])
            for s in seeds
        ]
    out = []
    for seed in seeds:
        ppo = [{"advantage": "gae", "beta": b} for b in [0.0, *RL_BETAS]]
        out += [(seed, ppo[:3]), (seed, ppo[3:])]
        for method in ["rloo", "grpo"]:
            runs = [{"advantage": method, "beta": b, "eval_every": 4} for b in RL_BETAS]
            out.append((seed, runs))
        dpo = [{"dpo": True, "beta": b, "dpo_epochs": e} for b in DPO_BETAS for e in DPO_EPOCHS]
        out.append((seed, [{"best_of_n": 64, "beta": 0.5, "num_updates": 1}, *dpo]))
    return out


def grpo_before_issue_30(batch: dict, args) -> tuple:
    """The ablation: GRPO's advantage as it was, the std dividing the score's advantage but not
    the KL-to-go added to it, A_t = (s_i - mean_j s_j) / (std_j s_j + 1e-4) - beta sum KL."""
    import torch

    import ppo_rlhf_toy as toy

    mask = batch["mask"]
    kl_to_go, _ = toy.token_gae(batch["kl_rewards"], torch.zeros_like(mask), mask, args.gamma, 1.0)
    baseline, scale = toy.group_baseline(batch["scores"], args.num_generations, "grpo")
    return (((batch["scores"] - baseline) / scale)[:, None] + kl_to_go) * mask, None


def run_task(seed: int, runs: list, extra: list, ablation: bool = False) -> list:
    """One seed's stages 1 and 2 once, then each run on them."""
    import tyro

    import ppo_rlhf_toy as toy

    if ablation:
        toy.compute_advantages = grpo_before_issue_30

    base = tyro.cli(toy.Args, args=["--seed", str(seed), "--eval-every", "2", *extra])
    start = time.time()
    with contextlib.redirect_stdout(io.StringIO()):
        stages = toy.sft_and_reward_model(base)
    stage_seconds = time.time() - start
    results = []
    for changes in runs:
        # best-of-n on every held-out evaluation prompt, M = 256 SFT samples each
        bon = {"best_of_n_samples": 256, "best_of_n_prompts": base.eval_prompts}
        args = replace(base, **{"best_of_n": 0, **changes, **bon})
        start = time.time()
        with contextlib.redirect_stdout(io.StringIO()):
            result = toy.main(args, stages)
        result.update(
            seed=seed,
            beta=args.beta,
            dpo_epochs=args.dpo_epochs if args.dpo else None,
            kind="best_of_n" if args.best_of_n else "grpo_before_issue_30" if ablation else "run",
            stage_seconds=stage_seconds,
            run_seconds=time.time() - start,
        )
        results.append(result)
    return results


def run(args, extra: list):
    todo = tasks(args.seeds, args.ablation, args.early_stopping)
    with ProcessPoolExecutor(args.jobs) as pool, open(args.out, "a") as f:
        futures = [pool.submit(run_task, seed, runs, extra, args.ablation) for seed, runs in todo]
        for future in as_completed(futures):
            for r in future.result():
                f.write(json.dumps(r) + "\n")
                print(
                    f"seed={r['seed']} {r['method']} beta={r['beta']} kind={r['kind']}: "
                    f"held-out gain {r['gold_gain_in_sft_std']:+.2f}, "
                    f"validation {r['validation_gain_in_sft_std']:+.2f}, "
                    f"kl {r['final']['kl']:.2f}, "
                    f"{r['run_seconds']:.0f} s",
                    flush=True,
                )
            f.flush()


# --- analysis: every figure below is computed from the runs' JSON lines ---
def mean_se(values) -> tuple:
    values = np.asarray(values, float)
    se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return values.mean(), se


def fmt(values, digits: int = 2) -> str:
    if len(values) == 0:
        return "-"
    mean, se = mean_se(values)
    return f"{mean:+.{digits}f} +- {se:.{digits}f}"


def gain(gold: float, sft: dict) -> float:
    """Gold minus SFT's on the same prompts, in units of the SFT samples' gold std."""
    return (gold - sft["gold_score"]) / sft["gold_std"]


def bon_curve(result: dict) -> tuple:
    """Best-of-n's sqrt(KL) and held-out gain (against its own n = 1: SFT on the same samples)."""
    rows = result["best_of_n"]
    d = np.sqrt([r["kl"] for r in rows])
    return d, np.array([(r["gold"] - rows[0]["gold"]) / result["sft"]["gold_std"] for r in rows])


def at_kl(points: list, level: float):
    """The gain at KL = level on the curve through a seed's (KL, gain) end points, linear in
    sqrt(KL); None outside their range (no extrapolation)."""
    points = sorted(points)
    d = np.sqrt([k for k, _ in points])
    if not d[0] <= np.sqrt(level) <= d[-1]:
        return None
    return float(np.interp(np.sqrt(level), d, [g for _, g in points]))


def path_at_kl(result: dict, level: float):
    """The gain where a run's path along training (SFT at KL 0, then each evaluation) first
    reaches KL = level, linear in sqrt(KL) between the evaluations on either side."""
    d = [0.0] + [np.sqrt(max(h["kl"], 0.0)) for h in result["history"]]
    g = [0.0] + [gain(h["gold_score"], result["sft"]) for h in result["history"]]
    for i in range(1, len(d)):
        if d[i] >= np.sqrt(level):
            w = (np.sqrt(level) - d[i - 1]) / (d[i] - d[i - 1])
            return g[i - 1] + w * (g[i] - g[i - 1])
    return None


def fit(d, g, kind: str) -> np.ndarray:
    """Least squares of Gao et al.'s forms (through 0 at d = sqrt(KL) = 0):
    best-of-n: g = d (alpha - beta d);  RL: g = d (alpha - beta log d). Returns (alpha, beta)."""
    d = np.asarray(d, float)
    second = d**2 if kind == "bon" else d * np.log(d)
    return np.linalg.lstsq(np.stack([d, -second], 1), np.asarray(g, float), rcond=None)[0]


def curve(coef, d, kind: str):
    second = d**2 if kind == "bon" else d * np.log(d)
    return coef[0] * d - coef[1] * second


def along_training(result: dict) -> tuple:
    """A run's path: sqrt(KL) and held-out gain at each evaluation (KL > 0)."""
    rows = [h for h in result["history"] if h["kl"] > 0]
    d = np.sqrt([h["kl"] for h in rows])
    return d, np.array([gain(h["gold_score"], result["sft"]) for h in rows])


def name(method: str, beta: float, epochs=None) -> str:
    return f"{NAMES[method]} beta {beta}" + (f", {epochs} epochs" if epochs else "")


def analyse(results: list, label: str, command: str, out_dir: str, levels: list):
    runs = [r for r in results if r["kind"] == "run"]
    bon = {r["seed"]: r for r in results if r["kind"] == "best_of_n"}
    seeds = sorted({r["seed"] for r in runs})
    by = {}
    for r in runs:
        by.setdefault((r["method"], r["beta"], r["dpo_epochs"]), {})[r["seed"]] = r
    out = [f"# ppo_rlhf_toy.py: gold against KL, {len(seeds)} seeds ({label})", ""]
    out += [f"command: `{command}`", ""]
    out += [
        "Gain: gold minus SFT's on the same 512 prompts, in SFT std (mean +- SE over seeds).",
        "Validation and held-out prompts are disjoint, and no training loss saw either",
        "(overlap: the largest share of them found among the prompts of any training batch).",
        "KL: sequence-level KL(pi || SFT), Monte Carlo on the policy's own held-out samples.",
        "",
        "## Every run (end points)",
        "",
        "| run | seeds | validation gain | held-out gain | KL | proxy "
        "| overlap (held out, validation) |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in sorted(by, key=lambda k: (list(NAMES).index(k[0]), k[1], k[2] or 0)):
        rs = list(by[key].values())
        out.append(
            f"| {name(*key)} | {len(rs)} | {fmt([r['validation_gain_in_sft_std'] for r in rs])} "
            f"| {fmt([r['gold_gain_in_sft_std'] for r in rs])} "
            f"| {fmt([r['final']['kl'] for r in rs])} "
            f"| {fmt([r['final']['proxy_score'] for r in rs])} "
            f"| {max(r['heldout_overlap'] for r in rs)}, "
            f"{max(r['validation_overlap'] for r in rs)} |"
        )
    # --- choices on validation gold only ---
    best = {}
    for key, rs in by.items():
        score = np.mean([r["validation_gain_in_sft_std"] for r in rs.values()])
        if key[0] not in best or score > best[key[0]][1]:
            best[key[0]] = (key, score)
    out += ["", "## Chosen on validation gold (the held-out gain only reports)", ""]
    for method, (key, score) in best.items():
        out.append(
            f"- {NAMES[method]}: {name(*key)}: validation {score:+.2f}, held out "
            f"{fmt([r['gold_gain_in_sft_std'] for r in by[key].values()])}"
        )
    dpo_epochs = best["dpo"][0][2] if "dpo" in best else None
    # --- matched KL, paired by seed ---
    curves = {}  # method -> seed -> [(KL, gain)] over betas
    for (method, _, epochs), rs in by.items():
        if method == "dpo" and epochs != dpo_epochs:
            continue
        for seed, r in rs.items():
            curves.setdefault(method, {}).setdefault(seed, []).append(
                (max(r["final"]["kl"], 0.0), r["gold_gain_in_sft_std"])
            )
    matched = {}  # (method, level) -> {seed: gain}
    for level in levels:
        for method, per_seed in curves.items():
            matched[method, level] = {
                s: g for s, pts in per_seed.items() if (g := at_kl(pts, level)) is not None
            }
        matched["bon", level] = {}
        for s, r in bon.items():
            d, g = bon_curve(r)
            if d[0] <= np.sqrt(level) <= d[-1]:
                matched["bon", level][s] = float(np.interp(np.sqrt(level), d, g))
    out += [
        "",
        "## Held-out gain at matched KL, paired by seed"
        + (f" (DPO at {dpo_epochs} epochs)" if dpo_epochs else ""),
        "",
        "Each seed's end points over betas, interpolated linearly in sqrt(KL), at each KL level;",
        "a seed whose betas do not span a level is left out of that cell (n says how many",
        "remain). Differences are taken seed by seed, then mean +- paired SE.",
        "",
        "| KL | method | n | held-out gain | minus PPO | minus best-of-n |",
        "|---|---|---|---|---|---|",
    ]
    paired = {}
    for level in levels:
        for method in [m for m in ["ppo", "rloo", "grpo", "dpo"] if m in curves] + ["bon"] * bool(
            bon
        ):
            own = matched.get((method, level), {})
            diffs = {}
            for ref in ["ppo", "bon"]:
                other = matched.get((ref, level), {})
                diffs[ref] = [own[s] - other[s] for s in own if s in other]
            paired[method, level] = diffs
            label_m = "best-of-n" if method == "bon" else NAMES[method]
            missing = sorted(set(seeds) - set(own))
            n = f"{len(own)} (not seed {missing})" if missing else f"{len(own)}"
            out.append(
                f"| {level} | {label_m} | {n} | {fmt(list(own.values()))} "
                f"| {fmt(diffs['ppo']) if method != 'ppo' else '-'} "
                f"| {fmt(diffs['bon']) if method != 'bon' else '-'} |"
            )
    # --- Gao et al.'s forms: best-of-n per seed; RL along each run ---
    out += ["", "## Gao et al.'s forms, fitted per seed (mean +- SE of the coefficients)", ""]
    bon_coef = np.array([fit(*bon_curve(r), "bon") for r in bon.values()]).reshape(-1, 2)
    out.append(
        f"- best-of-n, g = d (alpha - beta d) over its 7 n: alpha {fmt(bon_coef[:, 0])}, "
        f"beta {fmt(bon_coef[:, 1])} ({len(bon_coef)} seeds)"
    )
    rl_fits = {}
    out += [
        "",
        "RL, g = d (alpha - beta log d), fitted along each run (its evaluations), d = sqrt(KL):",
        "",
        "| run | seeds | alpha | beta_RL | RMS residual | largest KL on the path |",
        "|---|---|---|---|---|---|",
    ]
    for key in sorted(by, key=lambda k: (list(NAMES).index(k[0]), k[1])):
        if key[0] == "dpo":
            continue
        coefs, resid, top = [], [], []
        for r in by[key].values():
            d, g = along_training(r)
            c = fit(d, g, "rl")
            coefs.append(c)
            resid.append(np.sqrt(np.mean((curve(c, d, "rl") - g) ** 2)))
            top.append(d.max() ** 2)
        coefs = np.array(coefs)
        rl_fits[key] = (coefs, top)
        out.append(
            f"| {name(*key)} | {len(coefs)} | {fmt(coefs[:, 0])} | {fmt(coefs[:, 1])} "
            f"| {np.mean(resid):.2f} | {np.median(top):.1f} (median) |"
        )
    # --- does a KL penalty act like early stopping? ---
    zero = by.get(("ppo", 0.0, None), {})
    out += [
        "",
        "## A KL penalty as early stopping: PPO's end point at beta > 0 minus the beta = 0 path",
        "",
        "The beta = 0 run's held-out gain where its path first reaches the end point's KL",
        "(interpolated in sqrt(KL) between its evaluations, SFT the first), paired by seed.",
        "",
        "| beta | n | end point's KL | end point's gain | beta = 0 path at that KL | difference |",
        "|---|---|---|---|---|---|",
    ]
    early = {}
    for (method, beta, _), rs in sorted(by.items(), key=lambda kv: kv[0][1]):
        if method != "ppo" or beta == 0:
            continue
        rows = []
        for s, r in rs.items():
            if s in zero and (p := path_at_kl(zero[s], max(r["final"]["kl"], 0))) is not None:
                rows.append((r["final"]["kl"], r["gold_gain_in_sft_std"], p))
        rows = np.array(rows)
        early[beta] = rows
        out.append(
            f"| {beta} | {len(rows)} | {fmt(rows[:, 0])} | {fmt(rows[:, 1])} | {fmt(rows[:, 2])} "
            f"| {fmt(rows[:, 1] - rows[:, 2])} |"
        )
    # early stopping chosen on validation: the beta = 0 run's evaluation with the best validation
    # gold, against PPO at its validation-chosen beta, paired by seed
    stops = {
        s: max(r["history"], key=lambda h: h["validation_gold_score"]) for s, r in zero.items()
    }
    penalized = [k for k in by if k[0] == "ppo" and k[1] > 0]
    best_penalty = max(
        penalized, key=lambda k: np.mean([r["validation_gain_in_sft_std"] for r in by[k].values()])
    )
    chosen = by[best_penalty]
    common = [s for s in stops if s in chosen]
    stop_gain = [gain(stops[s]["gold_score"], zero[s]["sft"]) for s in common]
    chosen_gain = [chosen[s]["gold_gain_in_sft_std"] for s in common]
    out += [
        "",
        f"Early stopping chosen on validation: the beta = 0 run stopped at its evaluation with the "
        f"best validation gold (update {fmt([stops[s]['update'] for s in common], 1)}) gains "
        f"{fmt(stop_gain)} held out at KL {fmt([stops[s]['kl'] for s in common])}; PPO at its "
        f"validation-chosen {name(*best_penalty)} gains {fmt(chosen_gain)}; the penalty minus "
        f"early stopping, paired: {fmt(np.subtract(chosen_gain, stop_gain))} "
        f"({len(common)} seeds).",
    ]
    peak = [max(along_training(r)[1]) for r in zero.values()]
    out += [
        "",
        f"The beta = 0 path's best held-out gain (an oracle: chosen on held-out gold, not a "
        f"result): {fmt(peak)}; its end point: "
        f"{fmt([r['gold_gain_in_sft_std'] for r in zero.values()])}.",
    ]
    before = [r for r in results if r["kind"] == "grpo_before_issue_30"]
    if before:
        out += [
            "",
            "## GRPO's scaling: the code before issue 30 (std on the score only) against the fix",
            "",
            "The same seeds, stages and betas; paired by seed (before minus after).",
            "",
            "| beta | n | KL before | KL after | KL difference | gain before | gain after "
            "| gain difference |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for beta in sorted({r["beta"] for r in before}):
            pairs = [
                (r, by["grpo", beta, None][r["seed"]])
                for r in before
                if r["beta"] == beta and r["seed"] in by.get(("grpo", beta, None), {})
            ]
            kl = np.array([[a["final"]["kl"], b["final"]["kl"]] for a, b in pairs])
            g = np.array([[a["gold_gain_in_sft_std"], b["gold_gain_in_sft_std"]] for a, b in pairs])
            out.append(
                f"| {beta} | {len(pairs)} | {fmt(kl[:, 0])} | {fmt(kl[:, 1])} "
                f"| {fmt(kl[:, 0] - kl[:, 1])} | {fmt(g[:, 0])} | {fmt(g[:, 1])} "
                f"| {fmt(g[:, 0] - g[:, 1])} |"
            )
    seconds = [r["run_seconds"] for r in runs]
    out += ["", f"{len(runs)} runs, {len(bon)} best-of-n computations; run seconds median "]
    out[-1] += f"{np.median(seconds):.0f} (several at a time: not a timing)."
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"rlhf_{label}.md"), "w") as f:
        f.write("\n".join(out) + "\n")
    print("\n".join(out))
    if bon and "dpo" in best:  # the full frontier
        path = os.path.join(out_dir, f"rlhf_{label}.png")
        plot(by, bon, matched, paired, rl_fits, best, levels, path)


def plot(by, bon, matched, paired, rl_fits, best, levels, path):
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed (benchmarks/requirements.txt): no plot")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2))
    dpo_epochs = best["dpo"][0][2]
    for k, method in enumerate(["ppo", "rloo", "grpo", "dpo"]):
        keys = sorted(
            k2 for k2 in by if k2[0] == method and (method != "dpo" or k2[2] == dpo_epochs)
        )
        xs, ys = [], []
        for key in keys:
            rs = list(by[key].values())
            x, xe = mean_se([np.sqrt(max(r["final"]["kl"], 0)) for r in rs])
            y, ye = mean_se([r["gold_gain_in_sft_std"] for r in rs])
            xs.append(x)
            ys.append(y)
            left.errorbar(
                x,
                y,
                xerr=xe,
                yerr=ye,
                fmt=MARKERS[method],
                color=COLORS[method],
                ms=7,
                mfc="none" if k % 2 else COLORS[method],
                alpha=0.85,
                capsize=2,
            )
        order = np.argsort(xs)
        left.plot(
            np.array(xs)[order],
            np.array(ys)[order],
            "-",
            color=COLORS[method],
            lw=1,
            marker=MARKERS[method],
            mfc="none",
            alpha=0.6,
            label=f"{NAMES[method]} (betas {', '.join(str(k2[1]) for k2 in keys)})"
            + (f", {dpo_epochs} epochs" if method == "dpo" else ""),
        )
    # best-of-n: the mean of its points, and Gao's fit over the range of its data only
    curves = [bon_curve(r) for r in bon.values()]
    d = np.mean([c[0] for c in curves], 0)
    g = np.mean([c[1] for c in curves], 0)
    left.plot(d, g, "k*", ms=8, label="best-of-n, n = 1..64")
    coef = np.mean([fit(*c, "bon") for c in curves], 0)
    dd = np.linspace(1e-3, d.max(), 100)
    left.plot(dd, curve(coef, dd, "bon"), "k--", lw=1, label="best-of-n fit (over its data)")
    # PPO at beta 0 along training: its mean path (each evaluation, over seeds), and the mean of
    # the fits along each run, over the KL its paths cover
    paths = [along_training(r) for r in by[("ppo", 0.0, None)].values()]
    n = min(len(p[0]) for p in paths)
    left.plot(
        np.mean([p[0][:n] for p in paths], 0),
        np.mean([p[1][:n] for p in paths], 0),
        ".",
        color=COLORS["ppo"],
        ms=4,
        label="PPO beta 0 along training (every 2 updates)",
    )
    coefs, top = rl_fits[("ppo", 0.0, None)]
    dd = np.linspace(1e-3, np.sqrt(np.median(top)), 100)
    left.plot(
        dd,
        curve(coefs.mean(0), dd, "rl"),
        ":",
        color=COLORS["ppo"],
        lw=2,
        label="PPO beta 0, RL fit along training",
    )
    left.set_xlabel("sqrt(KL to SFT), nats^0.5")
    left.set_ylabel("held-out gold gain over SFT (SFT std)")
    left.set_ylim(-2.8, 1.0)
    left.axhline(0, color="grey", lw=0.5)
    left.legend(fontsize=7, loc="lower left")
    left.set_title("end points: mean +- SE over seeds (one point per beta)")
    for i, method in enumerate(["rloo", "grpo", "dpo", "bon"]):
        for j, level in enumerate(levels):
            diffs = paired[method, level]["ppo"]
            if len(diffs) < 2:
                continue
            m, se = mean_se(diffs)
            color = "k" if method == "bon" else COLORS[method]
            right.errorbar(
                j + 0.15 * (i - 1.5),
                m,
                yerr=2 * se,
                fmt="o",
                color=color,
                capsize=3,
                label=("best-of-n" if method == "bon" else NAMES[method]) if j == 0 else None,
            )
    right.axhline(0, color=COLORS["ppo"], lw=1)
    right.set_xticks(range(len(levels)), [f"KL {lv}" for lv in levels])
    right.set_ylabel("held-out gain minus PPO's at the same KL (SFT std)")
    right.set_title("paired by seed: mean +- 2 paired SE")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 11)))
    parser.add_argument("--jobs", type=int, default=2, help="tasks at a time")
    parser.add_argument("--out", default="rlhf_runs.jsonl", help="each run appends a line here")
    parser.add_argument("--label", default="frontier", help="names the output files")
    parser.add_argument("--out-dir", default=os.path.join(ROOT, "benchmarks", "results"))
    parser.add_argument("--from-json", nargs="+", help="tabulate and plot these earlier runs")
    parser.add_argument(
        "--ablation", action="store_true", help="GRPO with the scaling before issue 30 only"
    )
    parser.add_argument(
        "--early-stopping",
        action="store_true",
        help="PPO at beta 0 evaluated every update, beside beta 0.5 and 1.0",
    )
    parser.add_argument("--kl-levels", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.from_json:
        results = [json.loads(line) for path in args.from_json for line in open(path)]
        command = " ".join(["python benchmarks/rlhf_frontier.py", *argv])
        analyse(results, args.label, command, args.out_dir, args.kl_levels)
        return
    run(args, extra)


if __name__ == "__main__":
    main()
