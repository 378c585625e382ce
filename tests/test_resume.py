"""Checkpoints, --resume and a clean stop, in each classic script.

A run is stopped halfway by a SIGINT raised inside it, with the handler that `python SCRIPT`
installs (`ask_to_stop`: the iteration finishes, the run saves and stops), then resumed from its
checkpoint with the settings parsed as `python SCRIPT --resume PATH` parses them. On StepCounter,
whose episodes end every 4 steps in every env at once, a stop between iterations falls on an
episode boundary, so the resumed run must retrace the uninterrupted one exactly: the same learning
rate (epsilon, PPO-KL's beta) at every later iteration, the same final global step, the same
weights. Then the ways out of a run that the CLI meets: a signal, a second Ctrl-C, SIGTERM, an
error, a thread, flags given back at their defaults on resume.
"""

import json
import os
import runpy
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch
from test_loops import SCALED_BOX, TERMINATED

import actor_critic
import dqn
import ppo
import reinforce
from conftest import ROOT

ALL_SCRIPTS = [reinforce, actor_critic, dqn, ppo]


def short_run(script, **kwargs):
    """8 iterations of 16 env steps (dqn: 64 env steps of 2 envs)."""
    args = dict(env_id=TERMINATED, total_timesteps=128, save_model=True, eval_episodes=1)
    if script is reinforce:
        args.update(num_episodes=4)  # a batch: 4 episodes of 4 steps
    elif script is dqn:
        args.update(num_envs=2, learning_starts=32, batch_size=16, save_replay_buffer=True)
    else:
        args.update(num_envs=2, num_steps=8)
    if script is ppo:
        args.update(loss="kl")  # so beta adapts too
    return script.Args(**{**args, **kwargs})


@pytest.fixture
def ctrl_c(monkeypatch):
    """SIGINT and SIGTERM handled as `python SCRIPT` handles them, for this test only."""

    def install(script):
        for signum in [signal.SIGINT, signal.SIGTERM]:
            previous = signal.signal(signum, script.ask_to_stop)
            restore.append((signum, previous))

    restore = []
    yield install
    for signum, previous in restore[::-1]:
        signal.signal(signum, previous)


def watch_schedules(script, monkeypatch, stop_at=None) -> list:
    """The learning rate (and dqn's epsilon, ppo's beta) at each iteration of a run, read where
    the loop calls its math; with stop_at, a SIGINT is raised in that iteration."""
    optimizers = []
    adam = torch.optim.Adam

    class Recorded(adam):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            optimizers.append(self)

    monkeypatch.setattr(torch.optim, "Adam", Recorded)
    seen = []
    name = {reinforce: "policy_gradient_loss", actor_critic: "gae", ppo: "gae"}.get(script)
    name = name or "epsilon_greedy"
    real = getattr(script, name)

    def watched(*args):
        row = [optimizers[0].param_groups[0]["lr"]]
        if script is dqn:
            row.append(args[1])  # epsilon
        seen.append(row)
        if stop_at is not None and len(seen) == stop_at:
            signal.raise_signal(signal.SIGINT)
        return real(*args)

    monkeypatch.setattr(script, name, watched)
    if script is ppo:
        real_beta = ppo.adapt_kl_beta

        def watched_beta(beta, kl, kl_target):
            seen[-1].append(beta)
            return real_beta(beta, kl, kl_target)

        monkeypatch.setattr(ppo, "adapt_kl_beta", watched_beta)
    return seen


def final_weights(path) -> torch.Tensor:
    model = torch.load(path, weights_only=True)["model"]
    return torch.cat([v.flatten().float() for v in model.values()])


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_a_run_stopped_halfway_and_resumed_retraces_the_uninterrupted_run(
    script, tmp_path, monkeypatch, capsys, ctrl_c
):
    """Catches a resume that restarts a schedule (the learning rate, epsilon, PPO-KL's beta),
    loses the optimizer's state, the normalization, the generators' states or the replay buffer,
    or ends at another step, and a Ctrl-C that does not save the iteration it stopped: on an env
    whose episodes all end together, the resumed run must end with the uninterrupted run's
    weights, bit for bit."""
    monkeypatch.chdir(tmp_path)
    whole = watch_schedules(script, monkeypatch)
    full = script.main(short_run(script, exp_name="whole"))
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)

    # Stop in iteration 4 of 8, which ends at global step 64; dqn's iteration is one env step,
    # and it acts epsilon-greedily (calling epsilon_greedy) from env step 16 on: its 16th call is
    # in env step 31 of 64.
    ctrl_c(script)
    stop_at = 16 if script is dqn else 4
    first = watch_schedules(script, monkeypatch, stop_at=stop_at)
    stopped = script.main(short_run(script, exp_name="halves"))
    assert stopped["stopped"] == "SIGINT" and stopped["global_step"] == 64
    out = capsys.readouterr().out
    path = out.split(f"stopped; resume: python {script.__name__}.py --resume ")[1].splitlines()[0]
    assert path.endswith("/halves.pt") and os.path.isfile(path)
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)

    second = watch_schedules(script, monkeypatch)
    resumed = script.main(script.parse_args(["--resume", path]))
    assert "resuming" in capsys.readouterr().out
    assert resumed["global_step"] == full["global_step"] == 128 and resumed["stopped"] is None
    assert first + second == whole
    assert torch.equal(final_weights(resumed["model_path"]), final_weights(full["model_path"]))


@pytest.mark.parametrize("script", [reinforce, actor_critic, ppo], ids=lambda m: m.__name__)
def test_resume_restores_the_normalization_statistics(script, tmp_path, monkeypatch):
    """Catches a resume that restarts the running mean and std of observations and returns
    (the policy would then see differently scaled inputs): on a Box env scaled by 100, the
    resumed run's first normalization finds the saved statistics in place."""
    monkeypatch.chdir(tmp_path)
    args = short_run(script, env_id=SCALED_BOX, total_timesteps=32)
    if script is ppo:
        args.loss = "clip"
    path = script.main(args)["model_path"]
    saved = torch.load(path, weights_only=True)["normalizer"]
    counts = []
    real_obs = script.Normalizer.obs

    def watched_obs(self, raw_obs, update=False):
        counts.append((self.obs_rms.count, self.return_rms.count))
        return real_obs(self, raw_obs, update)

    monkeypatch.setattr(script.Normalizer, "obs", watched_obs)
    script.main(script.parse_args(["--resume", path, "--total-timesteps", "64"]))
    assert counts[0] == (saved["obs_rms"]["count"], saved["return_rms"]["count"])
    assert counts[0][0] > 32  # every observation of the first run was counted


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_resume_refuses_another_env_another_network_and_a_finished_run(
    script, tmp_path, monkeypatch
):
    """Catches a resume that silently changes the env (a different network and data) or the
    network, and a resume of a finished run that crashes instead of asking for a larger
    --total-timesteps."""
    monkeypatch.chdir(tmp_path)
    path = script.main(short_run(script, total_timesteps=32))["model_path"]
    with pytest.raises(script.UsageError, match="--env-id cannot change on resume; it was rlref"):
        script.main(script.parse_args(["--resume", path, "--env-id", "Acrobot-v1"]))
    with pytest.raises(script.UsageError, match="that run is done; pass a larger"):
        script.main(script.parse_args(["--resume", path]))
    # the network's shape: --shared-trunk would load the saved critic's first layers into the
    # actor's (the same shapes), another --buffer-size would not fit the saved buffer
    flag = {actor_critic: "--shared-trunk", ppo: "--shared-trunk", dqn: "--buffer-size"}
    if script in flag:
        more = ["64"] if script is dqn else []
        with pytest.raises(script.UsageError, match=f"{flag[script]} cannot change on resume"):
            script.main(script.parse_args(["--resume", path, flag[script], *more]))


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_a_crash_while_saving_leaves_the_previous_checkpoint_whole(script, tmp_path, monkeypatch):
    """Catches a checkpoint written in place: a crash halfway through torch.save must leave the
    last good file loadable (the new one goes to a temporary file, then is renamed)."""
    path = str(tmp_path / "run" / "model.pt")
    script.save_checkpoint(path, {"model": {"w": torch.ones(3)}})

    def crash(obj, f):
        with open(f, "wb") as file:
            file.write(b"half a checkp")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        script.save_checkpoint(path, {"model": {"w": torch.zeros(3)}})
    assert torch.equal(torch.load(path, weights_only=True)["model"]["w"], torch.ones(3))


def test_dqn_without_its_replay_buffer_refills_learning_starts_steps_before_training(
    tmp_path, monkeypatch, capsys
):
    """Catches a resumed DQN that trains on a nearly empty buffer (a few transitions, sampled
    over and over) when the checkpoint has no replay buffer."""
    monkeypatch.chdir(tmp_path)
    path = dqn.main(short_run(dqn, total_timesteps=64, save_replay_buffer=False))["model_path"]
    assert torch.load(path, weights_only=True)["replay_buffer"] is None
    sizes = []
    real_sample = dqn.ReplayBuffer.sample

    def watched_sample(self, batch_size, device):
        sizes.append(self.size)
        return real_sample(self, batch_size, device)

    monkeypatch.setattr(dqn.ReplayBuffer, "sample", watched_sample)
    dqn.main(dqn.parse_args(["--resume", path, "--total-timesteps", "128"]))
    assert "no replay buffer saved: learning waits 32 new steps" in capsys.readouterr().out
    assert sizes and min(sizes) == 32  # the first gradient step sees learning_starts transitions


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_a_tracked_run_resumes_the_same_wandb_run(script, tmp_path, monkeypatch, fake_wandb):
    """Catches a resumed run that starts a new wandb run (or a new folder) instead of continuing
    the one it saved."""
    monkeypatch.chdir(tmp_path)
    wandb = fake_wandb
    path = script.main(short_run(script, total_timesteps=32, track=True))["model_path"]
    resumed = script.main(script.parse_args(["--resume", path, "--total-timesteps", "64"]))
    assert wandb.inits[0]["id"] is None and wandb.inits[1]["id"] == "abc123"
    assert wandb.inits[1]["name"] == wandb.inits[0]["name"] and resumed["model_path"] == path


def test_dqn_resumed_without_its_buffer_logs_before_it_trains_again(
    tmp_path, monkeypatch, fake_wandb
):
    """Catches the UnboundLocalError (`loss`, `q_taken`) of `dqn.py --resume PATH --track` on a
    checkpoint without --save-replay-buffer: the run logs at step 1,000 while its buffer refills,
    before its first gradient step, and has no TD loss to log yet."""
    monkeypatch.chdir(tmp_path)
    path = dqn.main(short_run(dqn, total_timesteps=64, save_replay_buffer=False))["model_path"]
    wandb = fake_wandb
    saved = vars(short_run(dqn, total_timesteps=64, save_replay_buffer=False))
    args = {**saved, "resume": path, "track": True, "learning_starts": 1000}
    dqn.main(dqn.Args(**{**args, "total_timesteps": 2100, "save_model": False}))
    first, second = [m for m in wandb.logged if "charts/SPS" in m]  # at steps 1,000 and 2,000
    assert first["global_step"] == 1000 and "losses/td_loss" not in first
    assert second["global_step"] == 2000 and "losses/td_loss" in second


def run_as_cli(script, argv: list, monkeypatch) -> tuple:
    """`python SCRIPT ARGV` in this process: its exit status."""
    handlers = {s: signal.getsignal(s) for s in [signal.SIGINT, signal.SIGTERM]}
    monkeypatch.setattr(sys, "argv", [script.__file__, *argv])
    status = 0
    try:
        runpy.run_path(script.__file__, run_name="__main__")
    except SystemExit as e:
        status = e.code
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    return status


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_flags_given_on_resume_replace_the_saved_ones_also_at_their_default(
    script, tmp_path, monkeypatch, capsys, fake_wandb
):
    """Catches a resume that keeps a saved setting the command line turns back to its default:
    `--no-cuda` on a CPU machine for a run trained with --cuda (it stopped with "torch sees no
    CUDA device"), and `--no-track`, `--no-capture-video`, `--save-every 0`; and a checkpoint in
    the working folder (a path without a directory) that the resumed run cannot save to."""
    monkeypatch.chdir(tmp_path)
    path = script.main(short_run(script, total_timesteps=32, save_every=16))["model_path"]
    checkpoint = torch.load(path, weights_only=True)
    on = dict(cuda=True, track=True, capture_video=True, save_every=16)
    checkpoint["args"] = {**checkpoint["args"], **on}
    torch.save(checkpoint, "gpu.pt")
    wandb = fake_wandb
    flags = ["--no-cuda", "--no-track", "--no-capture-video", "--save-every", "0"]
    flags += ["--no-save-model", "--total-timesteps", "64"]
    status = run_as_cli(script, ["--resume", "gpu.pt", *flags], monkeypatch)
    out = capsys.readouterr()
    assert status == 0, out.err
    assert json.loads(out.out.splitlines()[-1])["global_step"] == 64
    assert wandb.inits == [] and not os.path.exists("videos")
    assert torch.load("gpu.pt", weights_only=True)["global_step"] == 32  # not saved again
    flags = ["--resume", "gpu.pt", "--no-cuda", "--no-track", "--no-capture-video"]
    script.main(script.parse_args([*flags, "--total-timesteps", "64"]))  # saves every 16 steps
    assert torch.load("gpu.pt", weights_only=True)["global_step"] == 64


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_an_error_inside_the_run_leaves_ctrl_c_as_it_was(script, monkeypatch):
    """Catches signal handlers installed by main() and left behind by an exception: afterwards
    Ctrl-C is swallowed for the rest of the process (a notebook's interrupt button stops
    working)."""
    before = signal.getsignal(signal.SIGINT)
    name = {reinforce: "policy_gradient_loss", dqn: "linear_schedule"}.get(script, "gae")

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the loop")

    monkeypatch.setattr(script, name, broken)
    with pytest.raises(RuntimeError, match="a bug in the loop"):
        script.main(short_run(script, save_model=False))
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_main_runs_in_a_thread_other_than_the_main_one(script, tmp_path, monkeypatch):
    """Catches main() calling signal.signal, which raises ValueError outside the main thread (a
    training run started in a worker thread, a notebook's background job)."""
    monkeypatch.chdir(tmp_path)
    results = []
    thread = threading.Thread(target=lambda: results.append(script.main(short_run(script))))
    thread.start()
    thread.join(timeout=60)
    assert results and results[0]["global_step"] == 128


def start_cli(script, *flags, tmp_path) -> subprocess.Popen:
    """`python SCRIPT FLAGS` in its own process, once it has printed its first episode."""
    command = [sys.executable, os.path.join(ROOT, script.__name__ + ".py"), *flags]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for line in process.stdout:  # wait until it trains
        if "episodic_return=" in line:
            return process
    raise AssertionError(process.stderr.read())


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_stops_cleanly_and_the_checkpoint_resumes(
    signum, status, tmp_path, monkeypatch, capsys
):
    """Catches a stop that loses the run (a traceback, no checkpoint, a broken file), a checkpoint
    that --resume cannot continue, and SIGTERM (a job scheduler's stop) exiting with Ctrl-C's
    status 130 instead of its own 143."""
    process = start_cli(
        ppo, "--total-timesteps", "10000000", "--save-every", "100000", tmp_path=tmp_path
    )
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == status and "Traceback" not in err
    result = json.loads(out.splitlines()[-1])
    assert result["stopped"] == signal.Signals(signum).name
    path = out.split("stopped; resume: python ppo.py --resume ")[1].splitlines()[0]
    step = result["global_step"]
    assert torch.load(tmp_path / path, weights_only=True)["global_step"] == step
    assert step % (16 * 16) == 0  # it stopped between iterations
    if signum == signal.SIGINT:  # the command it printed, run in this process
        monkeypatch.chdir(tmp_path)
        flags = ["--resume", path, "--total-timesteps", str(step + 512)]
        assert run_as_cli(ppo, flags, monkeypatch) == 0
        assert json.loads(capsys.readouterr().out.splitlines()[-1])["global_step"] == step + 512


def test_a_second_ctrl_c_stops_at_once(tmp_path):
    """Catches a second Ctrl-C swallowed silently: the run would go on to the end of its
    iteration (here 200,000 env steps, a minute), where the first Ctrl-C asked it to stop."""
    flags = ["--num-envs", "1", "--num-steps", "200000", "--total-timesteps", "400000"]
    process = start_cli(ppo, *flags, tmp_path=tmp_path)
    process.send_signal(signal.SIGINT)
    time.sleep(0.5)
    start = time.time()
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    assert time.time() - start < 5
    assert process.returncode in (130, -signal.SIGINT)
