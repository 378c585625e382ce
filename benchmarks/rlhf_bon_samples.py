"""How best-of-n's exact KL and gold (ppo_rlhf_toy.best_of_n) depend on M, the number of SFT
samples per prompt whose empirical distribution it is computed for: the same prompts, SFT model
and reward model, M = 128 ... 4096.

    python benchmarks/rlhf_bon_samples.py --seeds 1 2 --samples 128 512 2048 4096 --prompts 128
"""

import argparse
import contextlib
import io
import os
import sys
import time
from dataclasses import replace

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import ppo_rlhf_toy as toy  # noqa: E402


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--samples", type=int, nargs="+", default=[128, 512, 2048, 4096])
    parser.add_argument("--prompts", type=int, default=128, help="the first held-out prompts")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args()
    lines = [
        "# ppo_rlhf_toy.py: best-of-n's exact KL against the number of SFT samples per prompt",
        "",
        f"command: `python benchmarks/rlhf_bon_samples.py {' '.join(sys.argv[1:])}`",
        "",
        "Default settings; the first held-out evaluation prompts of main(). KL(pi_n || q) and",
        "gold_n are exact for q, the empirical distribution of M SFT samples per prompt; gold in",
        "raw units; the bound is log n - (n - 1) / n.",
        "",
        "| seed | M | seconds | "
        + " | ".join(f"KL, n={2**i}" for i in range(7))
        + " | gold, n=64 |",
        "|---|---|---|" + "---|" * 8,
    ]
    bound = [np.log(2**i) - (2**i - 1) / 2**i for i in range(7)]
    for seed in args.seeds:
        base = toy.Args(seed=seed)
        with contextlib.redirect_stdout(io.StringIO()):
            stages = toy.sft_and_reward_model(base)
        # main()'s held-out evaluation prompts
        eval_rng = np.random.default_rng(seed + 2)
        language = stages["language"]
        heldout = language.prompts(eval_rng, base.eval_prompts, base.prompt_len, True)
        prompts = toy.torch.from_numpy(heldout[: args.prompts])
        for m in args.samples:
            start = time.time()
            rows = toy.best_of_n(
                stages["sft"],
                stages["reward_model"],
                language,
                prompts,
                replace(base, best_of_n_samples=m),
            )
            seconds = time.time() - start
            kls = " | ".join(f"{r['kl']:.3f}" for r in rows)
            lines.append(f"| {seed} | {m} | {seconds:.1f} | {kls} | {rows[-1]['gold']:.3f} |")
            print(lines[-1], flush=True)
    lines.append("| bound | | | " + " | ".join(f"{b:.3f}" for b in bound) + " | |")
    path = os.path.join(args.out, "rlhf_bon_samples.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
