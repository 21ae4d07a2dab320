"""`dreamer train` and `dreamer eval` end to end, on tiny models for seconds."""

import json
import re
import signal
import subprocess
from pathlib import Path

import pytest
import torch

import dreamer
from dreamer import checkpoint
from dreamer.cli import main
from dreamer.config import load_config
from dreamer.logging import read_jsonl
from dreamer.train import Trainer
from tests.conftest import FAST, train_args

def read_metrics(logdir):
    return [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]


def test_train_gym_writes_logs_checkpoints_and_replay(tmp_path):
    logdir = tmp_path / "run"
    assert main(train_args(logdir)) == 0
    rows = read_metrics(logdir)
    steps = [row["step"] for row in rows]
    assert steps == sorted(set(steps)) and steps[-1] == 200
    assert any("loss/world_model" in row for row in rows) and any("episode/return" in row for row in rows)
    last = rows[-1]
    # 150 steps after the prefill at ratio 64 with 4 x 16 = 64 replayed steps per update: 150 updates
    assert last["perf/updates"] == 150 and last["perf/train_ratio"] == pytest.approx(64.0)
    assert (logdir / "config.yaml").read_text().count("train_ratio: 64.0") == 1
    assert [p.name for p in checkpoint.list_checkpoints(logdir / "checkpoints")] == \
        ["ckpt-0000000100.pt", "ckpt-0000000200.pt"]
    assert list(logdir.glob("events.out.tfevents.*"))
    assert list((logdir / "replay").glob("env0-*.npz"))


def test_train_crafter(tmp_path):
    logdir = tmp_path / "crafter"
    assert main(train_args(logdir, "crafter", 120, "--set", "environment.length=50")) == 0
    rows = read_metrics(logdir)
    assert rows[-1]["step"] == 120
    assert any("episode/score" in row for row in rows)  # 50-step episodes finished
    assert any(key.startswith("achievements/") for row in rows for key in row)


def test_resume_continues_step_counter_ratio_and_replay(tmp_path):
    logdir = tmp_path / "run"
    assert main(train_args(logdir, "gym:CartPole-v1", 100)) == 0
    first = checkpoint.load_latest(logdir / "checkpoints")[1]
    assert first["progress"]["step"] == 100 and first["ratio"] == {"steps": 50, "updates": 50}

    cfg = load_config(FAST + ["run.prefill=50", "run.train_ratio=64", f"logdir={logdir}", "device=cpu"],
                      {"env": "gym:CartPole-v1", "size": "xs", "steps": 200})
    trainer = Trainer(cfg)
    assert trainer.resumed_from.name == "ckpt-0000000100.pt"
    assert trainer.progress.step == 100 and len(trainer.replay) == 100  # replay refilled from disk
    for key, value in first["agent"].items():
        torch.testing.assert_close(trainer.agent.state_dict()[key], value)
    trainer.run()
    final = checkpoint.load_latest(logdir / "checkpoints")[1]
    assert final["progress"]["step"] == 200 and final["ratio"] == {"steps": 150, "updates": 150}
    steps = [row["step"] for row in read_metrics(logdir)]
    assert steps == sorted(set(steps)) and steps[-1] == 200  # no step logged twice
    # one record per start: where it started, on what code and with how many CPU threads
    starts = read_jsonl(logdir / "starts.jsonl")
    assert [start["step"] for start in starts] == [0, 100]
    assert all(start["cpu_threads"] == torch.get_num_threads() and start["device"] == "cpu" for start in starts)
    git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(dreamer.__file__).parent, capture_output=True, text=True)
    if git.returncode == 0:
        assert starts[0]["commit"].split("+")[0] == git.stdout.strip()


def test_resume_flag_needs_a_checkpoint(tmp_path, capsys):
    assert main(train_args(tmp_path / "empty", "gym:CartPole-v1", 100, "--resume")) == 2
    assert "holds no checkpoint" in capsys.readouterr().err


def test_a_command_that_differs_from_the_run_is_refused_before_a_model_is_built(tmp_path, capsys):
    logdir = tmp_path / "run"
    assert main(train_args(logdir, "gym:CartPole-v1", 100)) == 0
    capsys.readouterr()
    files = sorted(p.name for p in logdir.iterdir())
    assert main(train_args(logdir, "gym:Acrobot-v1", 200, "--set", "dims.units=48")) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"dreamer: error: {logdir} holds a run this command does not match:",
                   "  env: the run has 'gym:CartPole-v1', this command gives 'gym:Acrobot-v1'",
                   "  dims.units: the run has 32, this command gives 48",
                   f"continue it with `dreamer train --logdir {logdir}` (add --steps N to train longer), or start "
                   f"a new run in another --logdir"]
    assert sorted(p.name for p in logdir.iterdir()) == files  # nothing written: no new events file


def test_logdir_alone_continues_the_run_with_its_config(tmp_path, capsys):
    logdir = tmp_path / "run"
    assert main(train_args(logdir, "gym:CartPole-v1", 100)) == 0
    saved = (logdir / "config.yaml").read_text()
    assert main(["train", "--logdir", str(logdir), "--steps", "140", "--device", "cpu"]) == 0
    assert checkpoint.list_checkpoints(logdir / "checkpoints")[-1].name == "ckpt-0000000140.pt"
    changed = [(a, b) for a, b in zip(saved.splitlines(), (logdir / "config.yaml").read_text().splitlines()) if a != b]
    assert changed == [("  steps: 100", "  steps: 140")]
    assert main(["train", "--logdir", str(logdir)]) == 0  # at its steps already: nothing to do
    assert "trained to step 140" in capsys.readouterr().out


def test_train_says_what_it_needs_and_makes_no_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train"]) == 2
    assert capsys.readouterr().err.strip() == (
        "dreamer: error: dreamer train needs --env (a new run) or the --logdir of a run to continue")
    assert main(["train", "--logdir", "nothing-here"]) == 2
    assert capsys.readouterr().err.strip() == (
        "dreamer: error: nothing-here holds no run to continue; a new run needs --env, e.g. --env crafter")
    for env, device, says in (("gym:Blackjack-v1", "cpu", "observation space Tuple"),
                              ("gym:NoSuchEnv-v0", "cpu", "unknown gymnasium id"),
                              ("gym:CartPole-v1", "cuda", "CUDA is not available")):
        assert main(["train", "--env", env, "--device", device, "--logdir", "new"]) == 2
        assert says in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_checkpoint_from_another_version_is_refused(tmp_path, capsys):
    logdir = tmp_path / "run"
    assert main(train_args(logdir, "gym:CartPole-v1", 100)) == 0
    path = checkpoint.list_checkpoints(logdir / "checkpoints")[-1]
    payload = torch.load(path, weights_only=False)
    torch.save({**payload, "format": checkpoint.FORMAT_VERSION + 1}, path)
    assert main(train_args(logdir, "gym:CartPole-v1", 200)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"dreamer: error: checkpoint {path} has format {checkpoint.FORMAT_VERSION + 1}; "
                   f"this version reads format {checkpoint.FORMAT_VERSION}")


def test_unreadable_newest_checkpoint_falls_back(tmp_path, caplog):
    logdir = tmp_path / "run"
    assert main(train_args(logdir, "gym:CartPole-v1", 200)) == 0
    newest = checkpoint.list_checkpoints(logdir / "checkpoints")[-1]
    newest.write_bytes(b"not a checkpoint")
    path, payload = checkpoint.load_latest(logdir / "checkpoints")
    assert re.search("ckpt-0000000200.pt is unreadable.*falling back to ckpt-0000000100.pt", caplog.text)
    assert payload["progress"]["step"] == 100


def test_eval_writes_json(tmp_path, capsys):
    logdir = tmp_path / "run"
    assert main(train_args(logdir, "gym:CartPole-v1", 100)) == 0
    out = tmp_path / "eval.json"
    assert main(["eval", "--checkpoint", str(logdir), "--episodes", "3", "--device", "cpu", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["episodes"] == 3 and len(result["returns"]) == 3 and result["step"] == 100
    assert result["mean_return"] == pytest.approx(sum(result["returns"]) / 3)
    assert all(r == length for r, length in zip(result["returns"], result["lengths"]))  # CartPole: +1 a step
    err = capsys.readouterr().err
    assert "evaluating the policy of step 100: 3 episodes in eval mode" in err
    for done in (1, 2, 3):  # one env: an episode per report
        mean = sum(result["returns"][:done]) / done
        assert f"evaluation: {done}/3 episodes, mean return {mean:.2f}" in err


def test_a_signal_during_the_final_evaluation_stops_it_and_keeps_the_run(tmp_path):
    from dreamer.evaluate import evaluate
    from dreamer.stopping import Stopped, StopRequest

    logdir = tmp_path / "run"
    assert main(train_args(logdir, "gym:CartPole-v1", 100)) == 0
    stop = StopRequest()
    stop.signum = signal.SIGTERM  # as its handler sets it
    with pytest.raises(Stopped) as stopped:
        evaluate(logdir, 5, "cpu", logdir / "eval.json", stop)
    assert stopped.value.exit_status == 143 and stopped.value.step == 100
    assert not (logdir / "eval.json").exists()
    assert checkpoint.load_latest(logdir / "checkpoints")[1]["progress"]["step"] == 100


def test_eval_errors(tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path / "nothing"), "--episodes", "1"]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "bad.pt").write_bytes(b"junk")
    assert main(["eval", "--checkpoint", str(tmp_path / "bad.pt"), "--episodes", "1"]) == 2
    assert "is unreadable" in capsys.readouterr().err


def test_parallel_envs_and_eval_at_the_end(tmp_path, monkeypatch):
    """The final evaluation plays with the training agent: building (and compiling) a second one
    while the first still held its device memory doubled the peak at the end of a run."""
    from dreamer.agent import AgentBase

    built, init = [], AgentBase.__init__
    monkeypatch.setattr(AgentBase, "__init__", lambda self, *args: built.append(type(self)) or init(self, *args))
    logdir = tmp_path / "run"
    assert main(train_args(logdir, "gym:CartPole-v1", 100, "--envs", "2", "--set", "run.eval_episodes=2")) == 0
    assert len(built) == 1
    payload = checkpoint.load_latest(logdir / "checkpoints")[1]
    assert payload["progress"]["step"] == 100
    assert payload["ratio"]["steps"] == 50  # both envs' steps after the prefill count
    assert payload["ranks"][0]["replay_written"] == [50, 50]
    assert {p.name.split("-")[0] for p in (logdir / "replay").glob("*.npz")} == {"env0", "env1"}
    episodes = [json.loads(line) for line in (logdir / "episodes.jsonl").read_text().splitlines()]
    assert episodes and all(ep["length"] == ep["return"] for ep in episodes)  # CartPole pays +1 a step
    result = json.loads((logdir / "eval.json").read_text())
    assert result["episodes"] == 2 and result["checkpoint"] == str(logdir / "checkpoints" / "ckpt-0000000100.pt")


def test_episode_statistics_by_hand():
    from dreamer.train import Progress, cumulative_metrics, record_episodes

    progress = Progress()
    means = record_episodes([
        {"return": 1.0, "length": 10, "achievement_collect_wood": 2.0, "achievement_place_table": 0.0},
        {"return": 3.0, "length": 20, "achievement_collect_wood": 0.0, "achievement_place_table": 1.0},
    ], progress)
    assert means == {"episode/return": 2.0, "episode/length": 15.0}
    stats = cumulative_metrics(progress)
    assert stats["episode/count"] == 2
    assert stats["achievements/collect_wood"] == 50.0 and stats["achievements/place_table"] == 50.0
    assert stats["episode/score"] == pytest.approx(50.0)  # exp((ln 51 + ln 51) / 2) - 1
    record_episodes([{"return": 0.0, "length": 5, "achievement_collect_wood": 1.0,
                      "achievement_place_table": 0.0}], progress)
    stats = cumulative_metrics(progress)
    assert stats["achievements/collect_wood"] == pytest.approx(200 / 3)  # 2 of 3 episodes
    assert progress.last_return == 0.0


def test_progress_lines_say_none_yet_before_the_first_episode_ends(caplog, monkeypatch):
    from dreamer.console import Console

    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    console = Console(total=200, initial=0, name="test", enabled=True)
    with caplog.at_level("INFO", logger="dreamer"):
        console.line(100, 3, float("nan"))
        console.line(200, 7, -12.345)
    console.close()
    first, second = [record.getMessage() for record in caplog.records]
    assert first.startswith("step 100/200 (50%)") and "updates 3  last return none yet  ETA " in first
    assert "updates 7  last return -12.35  ETA 0:00:00" in second


def test_replay_dir_elsewhere_and_resume_from_it(tmp_path):
    logdir, replay_dir = tmp_path / "run", tmp_path / "fast-disk" / "replay"
    assert main(train_args(logdir, "gym:CartPole-v1", 100, "--replay-dir", str(replay_dir))) == 0
    assert list(replay_dir.glob("env0-*.npz")) and not (logdir / "replay").exists()
    assert main(train_args(logdir, "gym:CartPole-v1", 150, "--replay-dir", str(replay_dir))) == 0
    payload = checkpoint.load_latest(logdir / "checkpoints")[1]
    assert payload["progress"]["step"] == 150 and payload["ranks"][0]["replay_written"] == [150]


def test_replay_too_large_for_memory_is_refused_unless_on_disk(tmp_path, monkeypatch, capsys):
    from dreamer import replay

    monkeypatch.setattr(replay, "available_memory", lambda: 1000)
    assert main(train_args(tmp_path / "a", "gym:CartPole-v1", 100)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bytes per step" in err and "replay.storage=disk" in err
    assert main(train_args(tmp_path / "b", "gym:CartPole-v1", 100, "--set", "replay.storage=disk")) == 0
    assert (tmp_path / "b" / "replay" / "storage" / "reward.npy").exists()


def test_videos_do_not_change_what_the_agent_trains_on(tmp_path):
    """The TensorBoard videos draw windows from their own RNG and leave torch's RNG as it was."""
    from dreamer.logging import read_jsonl

    runs = {}
    for every in (0, 50):
        logdir = tmp_path / f"video-{every}"
        assert main(train_args(logdir, "gym:CartPole-v1", 150, "--set", f"run.video_every={every}",
                               "--set", "imagine.horizon=4")) == 0
        runs[every] = [{k: v for k, v in r.items() if not k.startswith("perf/")}
                       for r in read_jsonl(logdir / "metrics.jsonl")]
    assert (tmp_path / "video-50").glob("events.*") and runs[50] == runs[0]
    assert any("loss/world_model" in r for r in runs[0])


def test_checkpoints_also_come_every_save_every_seconds(tmp_path):
    """With step-based saves out of reach, the time-based ones still come (the newest two kept)."""
    logdir = tmp_path / "run"
    assert main(train_args(logdir, "gym:CartPole-v1", 100, "--set", "run.save_every=100000",
                           "--set", "run.save_every_seconds=0.01")) == 0
    steps = [int(p.stem.split("-")[1]) for p in checkpoint.list_checkpoints(logdir / "checkpoints")]
    assert len(steps) == 2 and steps[0] < steps[1] == 100
