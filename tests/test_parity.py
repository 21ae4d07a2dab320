"""The parity harness (scripts/parity/): reading both codes' records, and its statistics, against
values worked out by hand. The runs themselves are a benchmark and are not part of the suite."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from dreamer.report import mean_and_band

PARITY = Path(__file__).resolve().parents[1] / "scripts" / "parity"
sys.path.insert(0, str(PARITY))

import parity  # noqa: E402
import settings  # noqa: E402
import stats  # noqa: E402


def write_jsonl(path: Path, lines: list[dict], tail: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + tail)


def test_final_and_mean_return():
    returns = np.array([10.0, 20.0, 30.0, 40.0])
    assert stats.final_return(returns, 2) == 35.0
    assert stats.final_return(returns, 20) == 25.0  # fewer episodes than the window: all of them
    assert stats.mean_return(returns) == 25.0
    assert math.isnan(stats.final_return(np.array([]), 20))


def test_episodes_skip_a_line_cut_short(tmp_path):
    write_jsonl(tmp_path / "episodes.jsonl", [{"step": 12, "return": 12.0}, {"step": 40, "return": 28.0}],
                tail='{"step": 55, "ret')
    steps, returns = stats.episodes(tmp_path)
    assert steps.tolist() == [12, 40] and returns.tolist() == [12.0, 28.0]


def test_curve_is_the_mean_of_the_last_episodes_ended_by_each_grid_step():
    steps, returns = np.array([10, 20, 30, 40]), np.array([1.0, 3.0, 5.0, 7.0])
    out = stats.curve(steps, returns, np.array([5, 20, 35, 40]), window=2)
    assert math.isnan(out[0])
    assert out[1:].tolist() == [2.0, 4.0, 6.0]


def test_band_is_the_t_interval_over_seeds():
    # two seeds 0 and 2: mean 1, sd sqrt(2), half-width t(0.975, 1) * sqrt(2) / sqrt(2) = 12.706
    mean, low, high = mean_and_band(np.array([[0.0], [2.0]]))
    assert mean[0] == 1.0
    assert high[0] - mean[0] == pytest.approx(12.7062, abs=1e-3)
    assert mean[0] - low[0] == pytest.approx(12.7062, abs=1e-3)


def test_welch_interval_by_hand():
    # a = 1, 2, 3 (mean 2, var 1); b = 2, 4, 6.5 (mean 4.1667, var 5.0833)
    # se = sqrt(1/3 + 5.0833/3) = 1.42400; t = -2.1667 / 1.42400 = -1.52154
    # Welch df = se^4 / ((1/3)^2/2 + (5.0833/3)^2/2) = 2.75757
    quantile = scipy_stats.t.ppf(0.975, 2.75757)
    test = stats.welch([1.0, 2.0, 3.0], [2.0, 4.0, 6.5])
    assert test["diff"] == pytest.approx(-2.16667, abs=1e-4)
    assert test["low"] == pytest.approx(-2.16667 - quantile * 1.42400, abs=1e-3)
    assert test["high"] == pytest.approx(-2.16667 + quantile * 1.42400, abs=1e-3)
    assert test["p"] == pytest.approx(0.2332, abs=1e-3)
    assert stats.verdict(test) == "level"


def test_verdicts_name_the_worse_side():
    ours_low = stats.welch([1.0, 1.1, 0.9], [5.0, 5.2, 4.8])
    assert ours_low["high"] < 0
    assert stats.verdict(ours_low) == "ours worse"
    assert stats.verdict(ours_low, higher_is_better=False) == "official worse"  # a lower loss is better
    assert stats.verdict(stats.welch([1.0], [2.0, 3.0])) == "too few seeds"
    same = stats.welch([2.0, 2.0], [2.0, 2.0])
    assert (same["low"], same["high"], stats.verdict(same)) == (0.0, 0.0, "level")


def test_official_losses_are_averaged_over_env_step_windows(tmp_path):
    write_jsonl(tmp_path / "losses.jsonl", [
        {"update": 1, "step": 1100, "image": 10.0, "dyn": 1.0},
        {"update": 2, "step": 1104, "image": 6.0, "dyn": 3.0},
        {"update": 3, "step": 1200, "image": 2.0, "dyn": 1.0},
        {"update": 4, "step": 1201, "image": 1.0, "dyn": 1.0},
    ])
    losses = stats.official_losses(tmp_path, 100)
    # 1100 ends its own window; 1104 and 1200 end the window (1100, 1200]; 1201 the next one
    assert losses["image"] == {1100: 10.0, 1200: 4.0, 1300: 1.0}
    assert losses["dyn"] == {1100: 1.0, 1200: 2.0, 1300: 1.0}
    assert "reward" not in losses
    assert stats.late_mean(losses["image"], 2) == 2.5


def test_our_losses_come_from_the_log_lines_that_have_them(tmp_path):
    write_jsonl(tmp_path / "metrics.jsonl", [
        {"step": 1100, "perf/updates": 0.0},
        {"step": 1200, "loss/image": 5.0, "loss/reward": 0.5, "perf/updates": 25.0},
        {"step": 1300, "loss/image": 3.0, "loss/reward": 0.25, "perf/updates": 50.0},
    ])
    assert stats.our_losses(tmp_path) == {"image": {1200: 5.0, 1300: 3.0}, "reward": {1200: 0.5, 1300: 0.25}}


def test_run_names_round_trip_and_foreign_folders_are_ignored():
    name = parity.run_name("official", "2024", "cartpole", "fast-bf16", 3)
    assert name == "official-2024-cartpole-fast-bf16-s3"
    assert parity.parse_name(name) == {"implementation": "official", "recipe": "2024", "task": "cartpole",
                                       "setting": "fast-bf16", "seed": 3}
    for foreign in ("queue-official-2023-cartpole", "ours-2023-cartpole-fast", "mine-2023-cartpole-fast-s0",
                    "ours-2025-cartpole-fast-s0", "ours-2023-breakout-fast-s0"):
        assert parity.parse_name(foreign) is None


def test_collect_writes_results_and_verdicts(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    finals = {"ours": [100.0, 110.0, 120.0], "official": [300.0, 310.0, 290.0]}
    for impl, values in finals.items():
        for seed, value in enumerate(values):
            lines = [{"step": 100 * (i + 1), "return": 10.0} for i in range(20)]
            lines += [{"step": 3000 + 100 * i, "return": value} for i in range(20)]
            logdir = runs / parity.run_name(impl, "2023", "cartpole", "fast", seed)
            write_jsonl(logdir / "episodes.jsonl", lines)
            if impl == "ours":
                write_jsonl(logdir / "metrics.jsonl", [{"step": 5000}, {"step": 6000}])
            else:
                (logdir / "perf.json").write_text(json.dumps({"env_steps": 6000, "updates": 1225}))
    unfinished = runs / parity.run_name("official", "2023", "cartpole", "fast", 3)
    write_jsonl(unfinished / "episodes.jsonl", [{"step": 100, "return": 1000.0}])  # no perf.json: still running
    (runs / "queue.log").write_text("not a run")
    parity.main(["collect", "--runs", str(runs), "--out", str(out)])
    rows = (out / "results.csv").read_text().splitlines()
    assert rows[0] == "implementation,recipe,task,setting,seed,env_steps,final_return,mean_return"
    assert "ours,2023,cartpole,fast,0,6000,100.00,55.00" in rows
    assert "official,2023,cartpole,fast,2,6000,290.00,150.00" in rows
    assert len(rows) == 7  # the header and six finished runs
    verdicts = (out / "verdicts.md").read_text()
    final_row = next(line for line in verdicts.splitlines() if "final return" in line)
    assert "-190.00" in final_row and final_row.endswith("ours worse |")
    assert (out / "2023-cartpole-fast.png").stat().st_size > 0
    assert (out / "curves" / "ours-2023-cartpole-fast-s1.csv").read_text().splitlines()[1] == "100,10.0000"


def test_both_sides_get_the_same_experiment():
    ours = settings.ours_command("2023", "fast", "cartpole", 4, "/runs/x")
    official = settings.official_command("py", "runner.py", "code", "2023", "fast", "cartpole", 4, "/runs/y")
    def value(args, flag):
        return args[args.index(flag) + 1]
    assert value(ours, "--seed") == value(official, "--seed") == "4"
    assert value(ours, "--steps") == value(official, "--run.steps") == "6000"
    assert value(ours, "--train-ratio") == value(official, "--run.train_ratio") == "64"
    # the official loop counts windows of batch_length steps in its replay: 1085 windows = 1100 steps
    assert value(ours, "--prefill") == "1100" and value(official, "--run.train_fill") == "1085"
    assert value(ours, "--precision") == "fp32"
    assert "--losses" not in official
    crafter = settings.official_command("py", "runner.py", "code", "2023", "fast", "crafter", 0, "/runs/z")
    assert "--losses" in crafter and value(crafter, "--jax.metrics_every") == "1"
    bf16 = settings.ours_command("2023", "fast-bf16", "cartpole", 0, "/runs/b")
    assert value(bf16, "--precision") == "bf16" and parity.official_side("2023", "fast-bf16") == "fast"


def test_loss_runs_span_the_same_updates_in_both_recipes():
    """Crafter runs end after 100 updates: 4 env steps each at ratio 64 and 16 x 16 batches, after
    the 1,100-step prefill in the 2023 setting and, in the 2024 one, after the 272 steps that give
    the replay 256 windows of 17 steps."""
    def steps(args, flag):
        return int(args[args.index(flag) + 1])
    for recipe, expected in (("2023", 1100 + 400), ("2024", 272 + 400)):
        assert settings.run_steps(recipe, "crafter") == expected
        ours = settings.ours_command(recipe, "fast", "crafter", 0, "/runs/x")
        official = settings.official_command("py", "runner.py", "code", recipe, "fast", "crafter", 0, "/runs/y")
        assert steps(ours, "--steps") == steps(official, "--run.steps") == expected
    assert settings.run_steps("2024", "pendulum") == 6000
