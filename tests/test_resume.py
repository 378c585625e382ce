"""Checkpoints, --resume and a clean stop, in each classic script.

A run is stopped halfway by a SIGINT raised inside it (the handler the script installs lets the
iteration finish, saves, and stops), then resumed from its checkpoint. On StepCounter, whose
episodes end every 4 steps in every env at once, a stop between iterations falls on an episode
boundary, so the resumed run must retrace the uninterrupted one exactly: the same learning rate
(epsilon, PPO-KL's beta) at every later iteration, the same final global step, the same weights.
"""

import os
import signal
import subprocess
import sys
import types

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
    script, tmp_path, monkeypatch, capsys
):
    """Catches a resume that restarts a schedule (the learning rate, epsilon, PPO-KL's beta),
    loses the optimizer's state, the normalization, the generators' states or the replay buffer,
    or ends at another step: on an env whose episodes all end together, the resumed run must
    end with the uninterrupted run's weights, bit for bit."""
    monkeypatch.chdir(tmp_path)
    whole = watch_schedules(script, monkeypatch)
    full = script.main(short_run(script, exp_name="whole"))
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)

    # Stop in iteration 4 of 8, which ends at global step 64; dqn's iteration is one env step,
    # and it acts epsilon-greedily (calling epsilon_greedy) from env step 16 on: its 16th call is
    # in env step 31 of 64.
    stop_at = 16 if script is dqn else 4
    first = watch_schedules(script, monkeypatch, stop_at=stop_at)
    stopped = script.main(short_run(script, exp_name="halves"))
    assert stopped["stopped"] and stopped["global_step"] == 64
    out = capsys.readouterr().out
    path = out.split(f"stopped at global_step=64; resume: python {script.__name__}.py --resume ")[1]
    path = path.splitlines()[0]
    assert path.endswith("/halves.pt") and os.path.isfile(path)
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)

    second = watch_schedules(script, monkeypatch)
    resumed = script.main(script.Args(resume=path))
    assert "resuming" in capsys.readouterr().out
    assert resumed["global_step"] == full["global_step"] == 128
    assert first + second == whole
    assert torch.equal(final_weights(resumed["model_path"]), final_weights(full["model_path"]))


@pytest.mark.parametrize("script", [reinforce, actor_critic, ppo], ids=lambda m: m.__name__)
def test_resume_restores_the_normalization_statistics(script, tmp_path, monkeypatch):
    """Catches a resume that restarts the running mean and std of observations and returns
    (the policy would then see differently scaled inputs): on a Box env scaled by 100, the
    resumed run's first reset finds the saved statistics in place."""
    monkeypatch.chdir(tmp_path)
    args = short_run(script, env_id=SCALED_BOX, total_timesteps=32)
    if script is ppo:
        args.loss = "clip"
    path = script.main(args)["model_path"]
    saved = torch.load(path, weights_only=True)
    counts = []
    real_reset = script.Normalizer.reset

    def watched_reset(self, raw_obs):
        counts.append((self.obs_rms.count, self.return_rms.count))
        return real_reset(self, raw_obs)

    monkeypatch.setattr(script.Normalizer, "reset", watched_reset)
    script.main(script.Args(resume=path, total_timesteps=64))
    assert counts[0] == (saved["obs_rms"]["count"], saved["return_rms"]["count"])
    assert counts[0][0] > 32  # every observation of the first run was counted


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_resume_refuses_another_env_and_a_checkpoint_without_the_run_state(
    script, tmp_path, monkeypatch
):
    """Catches a resume that silently changes the env (a different network and data), one from a
    file that has no optimizer state or step (a checkpoint of an older version), and a resume of
    a finished run that crashes instead of asking for a larger --total-timesteps."""
    monkeypatch.chdir(tmp_path)
    path = script.main(short_run(script, total_timesteps=32))["model_path"]
    with pytest.raises(script.UsageError, match="--env-id cannot change when resuming"):
        script.main(script.Args(resume=path, env_id="Acrobot-v1"))
    with pytest.raises(script.UsageError, match="that run is done"):
        script.main(script.Args(resume=path))
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["optimizer"]
    torch.save(checkpoint, "old.pt")
    with pytest.raises(script.UsageError, match="no 'optimizer' in it"):
        script.main(script.Args(resume="old.pt"))


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
    dqn.main(dqn.Args(resume=path, total_timesteps=128))
    assert "no replay buffer saved: learning waits for 32 new steps" in capsys.readouterr().out
    assert sizes and min(sizes) == 32  # the first gradient step sees learning_starts transitions


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda m: m.__name__)
def test_a_tracked_run_resumes_the_same_wandb_run(script, tmp_path, monkeypatch):
    """Catches a resumed run that starts a new wandb run (or a new folder) instead of continuing
    the one it saved."""
    monkeypatch.chdir(tmp_path)
    inits = []
    fake = types.SimpleNamespace(
        init=lambda **kwargs: inits.append(kwargs),
        run=types.SimpleNamespace(id="abc123"),
        define_metric=lambda *args, **kwargs: None,
        log=lambda *args, **kwargs: None,
        finish=lambda: None,
    )
    monkeypatch.setitem(sys.modules, "wandb", fake)
    path = script.main(short_run(script, total_timesteps=32, track=True))["model_path"]
    resumed = script.main(script.Args(resume=path, total_timesteps=64))
    assert inits[0]["id"] is None and inits[1]["id"] == "abc123"
    assert inits[1]["name"] == inits[0]["name"] and resumed["model_path"] == path


def test_ctrl_c_on_a_running_ppo_saves_a_checkpoint_that_resumes(tmp_path):
    """Catches Ctrl-C that loses the run (a traceback, no checkpoint, a broken file) or leaves
    a checkpoint that --resume cannot continue."""
    command = [sys.executable, os.path.join(ROOT, "ppo.py"), "--total-timesteps", "10000000"]
    process = subprocess.Popen(
        [*command, "--save-every", "1000000"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in process.stdout:  # wait until it trains
        if "SPS=" in line:
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err
    stopped_line = [line for line in out.splitlines() if line.startswith("stopped at")][0]
    step = int(stopped_line.split("global_step=")[1].split(";")[0])
    path = stopped_line.split("--resume ")[1]
    assert torch.load(tmp_path / path, weights_only=True)["global_step"] == step
    batch = 16 * 16
    resumed = subprocess.run(
        [sys.executable, os.path.join(ROOT, "ppo.py"), "--resume", path]
        + ["--total-timesteps", str(step + 2 * batch)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    result = resumed.stdout.splitlines()[-1]
    assert f'"global_step": {step + 2 * batch}' in result
    assert step % batch == 0  # it stopped between iterations
