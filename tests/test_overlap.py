"""The training loop keeps the device busy: on a GPU an update is only queued when launched, and the
host waits for it the moment it reads one of its results. So a result of update k is read only once
update k + 1 is launched, or the envs have stepped after it (the last update of an iteration), or
in the background thread that draws the next batch; that batch is drawn while the envs step; ranks agree on stopping every `run.agree_every` steps, not at every step. On the CPU the order of
these events is what can be tested."""

import threading
import types

import pytest
import torch

from dreamer import distributed
from dreamer.agent import AgentBase
from dreamer.cli import main
from dreamer.envs.driver import Driver
from dreamer.overlap import BusyClock, HostCopy
from dreamer.replay import Replay
from dreamer.train import Trainer
from tests.conftest import TINY_2024, train_args


@pytest.mark.parametrize("recipe", ["2023", "2024"])
def test_no_result_of_an_update_is_read_before_the_envs_step(tmp_path, monkeypatch, recipe):
    events = []

    def recording(cls, name, event):
        plain = getattr(cls, name)

        def wrapped(self, *args, **kwargs):
            out = plain(self, *args, **kwargs)
            events.append(event if threading.current_thread() is threading.main_thread() else f"{event} (drawing)")
            return out

        monkeypatch.setattr(cls, name, wrapped)

    recording(Driver, "advance", "advance")
    recording(Trainer, "record_update", "metrics")
    recording(Replay, "write_back", "latents")
    recording(Replay, "prefetch", "prefetch")
    for agent in AgentBase.__subclasses__():
        launch = agent.update
        monkeypatch.setattr(agent, "update", lambda self, batch, _p=launch: events.append("launch") or _p(self, batch))
    args = train_args(tmp_path / "run", "gym:CartPole-v1", 120)
    if recipe == "2024":
        args = ["train", "--env", "gym:CartPole-v1", "--steps", "120", "--logdir", str(tmp_path / "run"),
                "--device", "cpu"]
        for override in (*TINY_2024, "replay.batch_size=2", "replay.batch_length=8", "run.train_ratio=32"):
            args += ["--set", override]
    assert main(args) == 0
    launches = [i for i, e in enumerate(events) if e == "launch"]
    assert len(launches) > 10
    for kind in ("metrics", "latents") if recipe == "2024" else ("metrics",):
        reads = [i for i, e in enumerate(events) if e.startswith(kind)]
        assert len(reads) == len(launches), kind
        for k, (launch, read) in enumerate(zip(launches, reads)):  # read once more work is queued
            later = events[launch + 1:read]
            assert "advance" in later or "launch" in later or events[read].endswith("(drawing)"), \
                f"{kind} of update {k} read before anything was queued"
        last_in_iteration = [launch for launch, after in zip(launches, [*launches[1:], len(events)])
                             if "advance" in events[launch:after]]
        assert all("advance" in events[launch:reads[launches.index(launch)]] or events[reads[launches.index(launch)]]
                   .endswith("(drawing)") for launch in last_in_iteration)
    assert any(e == "latents (drawing)" for e in events) == (recipe == "2024")
    firsts = [i for i in launches if "launch" not in events[max(j for j in range(i) if events[j] == "advance"):i]]
    for first in firsts:  # each iteration's first batch was drawn while the envs stepped, for that update
        drawn = max(j for j in range(first) if events[j] == "prefetch")
        assert "advance" in events[drawn:first] and "launch" not in events[drawn:first]
    assert len(firsts) <= events.count("prefetch") <= len(firsts) + 1  # the last may come after the run's end


def test_ranks_agree_on_stopping_every_n_steps_not_every_step(monkeypatch):
    agreements = []
    monkeypatch.setattr(distributed, "maximum", lambda t: agreements.append(t) or t)
    stop = types.SimpleNamespace(requested=True)
    trainer = types.SimpleNamespace(
        stop=stop, saved_time=0.0, ranks=distributed.Ranks(0, 4), device=torch.device("cpu"),
        cfg=types.SimpleNamespace(run=types.SimpleNamespace(save_every_seconds=1e9, agree_every=100)),
        progress=types.SimpleNamespace(step=0))
    decisions = []
    for step in range(4, 1001, 4):  # 4 ranks, one env each
        trainer.progress.step = step
        decisions.append(Trainer.decide(trainer, step - 4))
    assert len(agreements) == 10  # steps 100, 200, ..., 1000
    assert [i for i, (stop_now, _) in enumerate(decisions) if stop_now] == [24 + 25 * k for k in range(10)]
    trainer.ranks = distributed.Ranks(0, 1)  # one process: its own flag, at every step, no collective
    assert Trainer.decide(trainer, 0) == (True, False) and len(agreements) == 10


def test_host_copies_and_busy_clock_on_the_cpu():
    values = {"a": torch.arange(3.0)}
    copy = HostCopy(values)
    assert copy.get() is values  # nothing to copy: the tensors are on the host already
    clock = BusyClock(torch.device("cpu"))
    clock.start()
    torch.randn(200, 200) @ torch.randn(200, 200)
    clock.stop()
    share = clock.share()
    assert 0 < share <= 1
    assert clock.share() == 0.0  # the next interval starts empty
