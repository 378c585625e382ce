"""Count a classic script's non-blank lines by what they do: the algorithm, or one of four kinds of
plumbing (checkpoint/resume/signals, logging, evaluation, argument checks). Also its characters
per non-blank line, its longest line, and the lines from `def main` to the training loop.

    python benchmarks/count_lines.py                      # the four scripts as they are
    python benchmarks/count_lines.py --rev HEAD~1         # as they were in a commit

The rules are plain and the same for every version, so a before/after table compares like with
like: a top-level function, class or Args field is classified by its name; inside main(), a
section comment (`# --- logging ---`, `# --- checkpoint ...`) classifies the lines up to the next
section (or to where the code dedents), and any other line by the words it contains (`wandb`,
`print(`, `checkpoint`, `resume`, `signal`, `STOP`, `evaluate(`, `UsageError`...). Everything
else is the algorithm.
"""

import argparse
import ast
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ["reinforce.py", "actor_critic.py", "dqn.py", "ppo.py"]
KINDS = ["algorithm", "checkpoint", "logging", "evaluate", "checks"]
BY_NAME = {  # top-level functions, classes and constants
    "checkpoint": {"save_checkpoint", "load_checkpoint", "load_model", "resumed_args"}
    | {"parse_args", "ask_to_stop", "STOP", "FIXED_ON_RESUME", "COLUMNS"},
    "logging": {"start_wandb", "log_episode", "mean_return", "explained_variance"},
    "evaluate": {"evaluate"},
    "checks": {"check_args", "UsageError"},
}
FIELDS = {  # Args fields
    "checkpoint": {"save_model", "save_every", "save_replay_buffer", "resume"},
    "logging": {"track", "wandb_project_name", "wandb_entity", "capture_video"},
    "evaluate": {"eval_checkpoint", "eval_episodes", "eval_epsilon"},
}
METHODS = {"state_dict", "load_state_dict"}  # of Normalizer and ReplayBuffer: checkpoint
WORDS = [  # inside main(), in this order
    ("evaluate", r"eval_checkpoint|evaluate\("),
    ("checks", r"check_args|UsageError"),
    ("logging", r"wandb|print\(|log_episode|recent_returns|episode_returns|episode_lengths"),
    ("logging", r"\bsps\b|mean_return|explained_variance|start_time|start_step|flatnonzero\(done"),
    ("checkpoint", r"checkpoint|resume|STOP|\bstop|signal|handlers|first_iteration|save_"),
    ("checkpoint", r"run_name|\bpath\b|_rng|bit_generator|state_dict\(|result|stopped"),
]
SECTIONS = [("logging", "# --- logging"), ("checkpoint", "# --- checkpoint")]


def classify(source: str) -> list:
    """The kind of each line of `source` (None for a blank one)."""
    lines = source.split("\n")
    kinds = [None if not line.strip() else "algorithm" for line in lines]

    def mark(first: int, last: int, kind: str):
        for i in range(first - 1, last):
            if kinds[i] is not None:
                kinds[i] = kind

    for node in ast.parse(source).body:
        first = node.decorator_list[0].lineno if getattr(node, "decorator_list", None) else None
        first = first or node.lineno
        names = {getattr(node, "name", None)}
        if isinstance(node, ast.Assign):
            names = {t.id for t in node.targets if isinstance(t, ast.Name)}
        for kind, known in BY_NAME.items():
            if names & known:
                mark(first, node.end_lineno, kind)
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name in METHODS:
                    mark(item.lineno, item.end_lineno, "checkpoint")
                target = getattr(item, "target", None)
                for kind, known in FIELDS.items():
                    if node.name == "Args" and isinstance(target, ast.Name) and target.id in known:
                        mark(item.lineno, item.end_lineno + 1, kind)  # and its docstring
        if isinstance(node, ast.FunctionDef) and node.name == "make_envs":
            for item in ast.walk(node):
                if isinstance(item, ast.If | ast.Try) and "UsageError" in ast.unparse(item):
                    mark(item.lineno, item.end_lineno, "checks")
        if isinstance(node, ast.FunctionDef) and node.name == "main":
            section, depth = None, 0
            for i in range(node.lineno, node.end_lineno):
                line = lines[i]
                if line.strip().startswith("# ---"):
                    section = next((k for k, s in SECTIONS if line.strip().startswith(s)), None)
                    depth = len(line) - len(line.lstrip())
                if kinds[i] is None:
                    continue
                if len(line) - len(line.lstrip()) < depth:  # a section ends where it dedents
                    section, depth = None, 0
                kind = section or next((k for k, w in WORDS if re.search(w, line)), "algorithm")
                kinds[i] = kind
        if isinstance(node, ast.If):  # __main__: the CLI's error, signals and JSON
            for i in range(node.lineno - 1, node.end_lineno):
                if kinds[i] is not None:
                    kinds[i] = "checks" if "UsageError" in lines[i] else "checkpoint"
    return kinds


def count(source: str) -> dict:
    kinds = classify(source)
    lines = [line for line in source.split("\n") if line.strip()]
    main_start = next(i for i, line in enumerate(source.split("\n")) if line.startswith("def main"))
    loop = next(
        i
        for i, line in enumerate(source.split("\n"))
        if i > main_start and re.match(r"\s+(while|for iteration) ", line)
    )
    row = {kind: kinds.count(kind) for kind in KINDS}
    row["total"] = len(lines)
    row["chars per line"] = round(sum(len(line) for line in lines) / len(lines), 1)
    row["longest"] = max(len(line) for line in lines)
    row["main to loop"] = loop - main_start + 1
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="a git revision; default: the files as they are")
    args = parser.parse_args()
    columns = ["total", *KINDS, "chars per line", "longest", "main to loop"]
    print("| file | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for script in SCRIPTS:
        if args.rev:
            command = ["git", "show", f"{args.rev}:{script}"]
            source = subprocess.run(command, cwd=ROOT, capture_output=True, text=True).stdout
        else:
            source = open(os.path.join(ROOT, script)).read()
        row = count(source)
        print(f"| {script} | " + " | ".join(str(row[c]) for c in columns) + " |")


if __name__ == "__main__":
    main()
