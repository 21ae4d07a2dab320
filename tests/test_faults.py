"""Non-finite losses and gradients: the step is skipped on the device, counted and logged, and too
many in a row stop the run with its last checkpoint intact."""

import copy
import errno
import itertools
import json
import math

import pytest
import torch

from dreamer import checkpoint
from dreamer.agent import Agent
from dreamer.cli import main
from dreamer.config import load_config
from dreamer.optim import Optimizer
from dreamer.replay import Replay
from tests.conftest import act_space, obs_space, random_batch, tiny_config, train_args


def _optimizer(param: torch.nn.Parameter) -> Optimizer:
    cfg = load_config([], {"env": "crafter"}).optim.critic
    return Optimizer(cfg, [param])


def test_non_finite_gradient_or_loss_skips_the_whole_adam_step():
    param = torch.nn.Parameter(torch.ones(3))
    opt = _optimizer(param)
    opt.step((param * torch.tensor([1.0, 2.0, 3.0])).sum())
    after_one = copy.deepcopy((param.detach().clone(), opt.state_dict()))
    assert opt.skipped.item() == 0.0 and not torch.equal(after_one[0], torch.ones(3))

    norm = opt.step((param * torch.tensor([math.nan, 1.0, 1.0])).sum())  # NaN gradient
    assert math.isnan(norm.item()) and opt.skipped.item() == 1.0
    infinite_loss = (param * 0.0).sum() + math.inf  # finite (zero) gradient, infinite loss
    opt.step(infinite_loss)
    assert opt.skipped.item() == 1.0
    torch.testing.assert_close(param.detach(), after_one[0], rtol=0, atol=0)
    state, want = opt.state_dict()["state"][0], after_one[1]["state"][0]
    for key in ("step", "exp_avg", "exp_avg_sq"):  # moments and step count untouched
        torch.testing.assert_close(state[key], want[key], rtol=0, atol=0)

    opt.step((param * torch.tensor([1.0, 2.0, 3.0])).sum())
    assert opt.skipped.item() == 0.0 and opt.state_dict()["state"][0]["step"].item() == 2


def test_skipping_survives_loading_a_foreach_adam_state():
    param = torch.nn.Parameter(torch.ones(2))
    older = torch.optim.Adam([param], lr=1e-3, foreach=True)
    param.grad = torch.ones(2)
    older.step()
    opt = _optimizer(param)
    opt.load_state_dict(older.state_dict())
    before = param.detach().clone()
    opt.step((param * torch.tensor([math.nan, 1.0])).sum())
    assert opt.skipped.item() == 1.0 and torch.equal(param.detach(), before)


def test_each_part_skips_its_own_non_finite_step():
    """A NaN reward poisons only the world-model loss: that step is skipped, actor and critic
    (imagining from finite states) still learn. A NaN observation poisons everything downstream:
    no weight, slow critic or return-norm EMA changes."""
    obs, act = obs_space(image=False, vector=4), act_space(size=3)
    agent = Agent(tiny_config(env="gym:CartPole-v1"), obs, act)
    agent.train(random_batch(obs, act, batch=2, length=5))

    before = copy.deepcopy(agent.state_dict())
    batch = random_batch(obs, act, batch=2, length=5)
    batch["reward"][0, 2] = math.nan
    metrics = agent.train(batch)
    assert metrics["train/skipped"] == 1.0 and math.isnan(metrics["grad_norm/world_model"])
    assert math.isfinite(metrics["grad_norm/actor"]) and math.isfinite(metrics["grad_norm/critic"])
    after = agent.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith("wm."))
    assert not torch.equal(after["behavior.critic.mlp.0.0.weight"], before["behavior.critic.mlp.0.0.weight"])

    before = copy.deepcopy(agent.state_dict())
    batch = random_batch(obs, act, batch=2, length=5)
    batch["vector"][1, 0, 0] = math.nan
    metrics = agent.train(batch)
    assert metrics["train/skipped"] == 1.0
    assert all(math.isnan(metrics[f"grad_norm/{part}"]) for part in ("world_model", "actor", "critic"))
    for key, value in agent.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0, msg=key)

    metrics = agent.train(random_batch(obs, act, batch=2, length=5, seed=1))
    assert metrics["train/skipped"] == 0.0
    assert not torch.equal(agent.state_dict()["wm.rssm.gru.linear.weight"], before["wm.rssm.gru.linear.weight"])


def _poison(monkeypatch, every: int) -> None:
    """Replay batches get a NaN reward: every `every`-th batch (1 = all of them)."""
    plain = Replay.sample
    counter = itertools.count(1)

    def sample(self, *args, **kwargs):
        batch = plain(self, *args, **kwargs)
        if next(counter) % every == 0 and args == () and not kwargs:
            batch["reward"] = batch["reward"].copy()
            batch["reward"][0, 0] = math.nan
        return batch

    monkeypatch.setattr(Replay, "sample", sample)


def test_skipped_updates_are_logged_and_the_run_goes_on(tmp_path, monkeypatch):
    _poison(monkeypatch, every=2)
    logdir = tmp_path / "run"
    assert main(train_args(logdir, "gym:CartPole-v1", 150, "--set", "run.max_nonfinite=2")) == 0
    records = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    skipped = [r["train/skipped"] for r in records if "train/skipped" in r]
    assert skipped and all(0.4 <= s <= 0.6 for s in skipped)  # every other update
    # the finite gradient norms of the interval are still logged, with the count of skipped updates
    trained = [r for r in records if "train/skipped" in r]
    assert all(math.isfinite(r["grad_norm/world_model"]) for r in trained)
    for before, record in zip(records, records[1:]):
        if "train/skipped" in record:  # skipped updates = fraction skipped x updates in the interval
            interval = record["perf/updates"] - before["perf/updates"]
            assert record["train/skipped_updates"] == round(record["train/skipped"] * interval) >= 1
    payload = checkpoint.load_latest(logdir / "checkpoints")[1]
    assert all(torch.isfinite(v).all() for v in payload["agent"].values() if v.is_floating_point())


def test_too_many_in_a_row_stop_the_run_and_keep_its_checkpoint(tmp_path, monkeypatch, capsys):
    logdir = tmp_path / "run"
    assert main(train_args(logdir, "gym:CartPole-v1", 100)) == 0
    saved = checkpoint.list_checkpoints(logdir / "checkpoints")
    _poison(monkeypatch, every=1)
    code = main(train_args(logdir, "gym:CartPole-v1", 200, "--set", "run.max_nonfinite=3"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1].startswith("dreamer: error: 3 updates in a row had a non-finite loss or gradient")
    assert str(saved[-1]) in err[-1] and "run.max_nonfinite=3" in err[-1]
    assert sum("skipped: non-finite" in line for line in err) == 3
    assert checkpoint.list_checkpoints(logdir / "checkpoints") == saved  # nothing written after the fault
    path, payload = checkpoint.load_latest(logdir / "checkpoints")
    assert path == saved[-1] and payload["progress"]["step"] == 100


def test_full_disk_at_a_checkpoint_stops_the_run_and_keeps_the_previous_one(tmp_path, monkeypatch, capsys):
    logdir = tmp_path / "run"
    assert main(train_args(logdir, "gym:CartPole-v1", 100)) == 0
    saved = checkpoint.list_checkpoints(logdir / "checkpoints")

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    assert main(train_args(logdir, "gym:CartPole-v1", 200)) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == f"dreamer: error: {logdir / 'checkpoints' / 'ckpt-0000000200.pt'}: No space left on device"
    assert checkpoint.list_checkpoints(logdir / "checkpoints") == saved  # no partial file, nothing pruned
    assert not list((logdir / "checkpoints").glob(".*tmp"))
    monkeypatch.undo()
    assert checkpoint.load_latest(logdir / "checkpoints")[1]["progress"]["step"] == 100
    assert main(train_args(logdir, "gym:CartPole-v1", 200)) == 0  # disk freed: the run goes on from 100


def test_full_disk_at_a_log_write_names_the_log(tmp_path, monkeypatch, capsys):
    from dreamer import logging as logs

    class FullFile:
        name = str(tmp_path / "metrics.jsonl")

        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as raised:
        logs._append(FullFile(), {"step": 1})
    assert raised.value.filename == FullFile.name and raised.value.errno == errno.ENOSPC

    def full_disk(file, record):
        raise OSError(errno.ENOSPC, "No space left on device", file.name)

    monkeypatch.setattr(logs, "_append", full_disk)
    assert main(train_args(tmp_path / "run", "gym:CartPole-v1", 100)) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"dreamer: error: {tmp_path / 'run'}") and err.endswith("No space left on device")


def test_crashed_and_hung_subprocess_envs_are_restarted(tmp_path, monkeypatch, capsys):
    """Two envs in subprocesses; one crashes at step 60, one hangs at step 120 (past a 3 s timeout).
    Both times the envs restart, the running episodes are logged as truncated, and training goes on."""
    from dreamer.envs import driver

    faults = tmp_path / "faults"
    faults.mkdir()
    monkeypatch.setenv("DREAMER_FAULT_DIR", str(faults))
    steps_seen = []
    plain_advance = driver.Driver.advance

    def advance(self):
        steps_seen.append(len(steps_seen))
        if len(steps_seen) == 30:
            (faults / "crash").touch()
        if len(steps_seen) == 60:
            (faults / "hang").touch()
        return plain_advance(self)

    monkeypatch.setattr(driver.Driver, "advance", advance)
    logdir = tmp_path / "run"
    args = train_args(logdir, "gym:tests.fault_envs:Faulty-v0", 200, "--envs", "2", "--set", "environment.timeout=3")
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err.count("env fault") == 2 and "restart 2" in err
    episodes = [json.loads(line) for line in (logdir / "episodes.jsonl").read_text().splitlines()]
    truncated = [e for e in episodes if e.get("truncated")]
    assert 2 <= len(truncated) <= 4  # the episodes running at each fault (two envs, two faults)
    payload = checkpoint.load_latest(logdir / "checkpoints")[1]
    assert payload["progress"]["step"] == 200 and payload["ranks"][0]["replay_written"] == [100, 100]
