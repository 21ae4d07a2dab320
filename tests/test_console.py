"""The progress lines a run prints without a terminal, and counts written in words that agree."""

import pytest

from dreamer.console import Console, counted


class Clock:
    """A stand-in for time.monotonic that the test moves on."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def plain_lines(monkeypatch, caplog):
    """(start a console of a 10,000-step run at a step, clock, lines so far), printing plain lines."""
    clock = Clock()
    monkeypatch.setattr("dreamer.console.time.monotonic", clock)
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    caplog.set_level("INFO", logger="dreamer")
    consoles = []

    def start(initial: int) -> Console:
        consoles.append(Console(total=10_000, initial=initial, name="test", enabled=True))
        return consoles[-1]

    yield start, clock, lambda: [record.getMessage() for record in caplog.records]
    for console in consoles:
        console.close()


def test_no_eta_during_the_prefill_and_none_from_the_interval_where_training_starts(plain_lines):
    start, clock, lines = plain_lines
    console = start(0)
    clock.now = 1.0
    console.line(1000, 0, float("nan"))  # random prefill: 1000 steps/s
    clock.now = 101.0
    console.line(1100, 40, 12.0)  # the prefill ended inside this interval
    clock.now = 201.0
    console.line(1200, 80, 15.0)  # trained throughout: 1 step/s, 8,800 steps to go
    prefill, first_trained, trained = lines()
    assert "1000.0 steps/s" in prefill and prefill.endswith("updates 0  last return none yet  ETA once training starts")
    assert "1.0 steps/s" in first_trained and first_trained.endswith("ETA at the next line")
    assert "1.0 steps/s" in trained and trained.endswith("ETA 2:26:40")


def test_a_continued_run_gives_an_eta_from_its_second_line(plain_lines):
    start, clock, lines = plain_lines
    console = start(400)
    clock.now = 50.0  # loading the checkpoint and the first updates
    console.line(500, 200, 3.0)
    clock.now = 60.0
    console.line(600, 240, 4.0)  # 10 steps/s, 9,400 steps to go
    first, second = lines()
    assert "2.0 steps/s" in first and first.endswith("ETA at the next line")
    assert "10.0 steps/s" in second and second.endswith("ETA 0:15:40")


@pytest.mark.parametrize("count, noun, text", [(0, "episode", "0 episodes"), (1, "episode", "1 episode"),
                                               (2, "step", "2 steps"), (12345, "run", "12,345 runs")])
def test_counted(count, noun, text):
    assert counted(count, noun) == text
