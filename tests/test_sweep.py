"""`dreamer sweep` (local backend) and `dreamer report` on a tiny grid."""

import csv
import json
import sys

import numpy as np
import pytest

from dreamer.cli import main
from dreamer.config import ConfigError
from dreamer.sweep import Point, Progress, Sweep, run_sweep
from tests.conftest import FAST, train_args

OVERRIDES = [*FAST, "run.prefill=50"]


def tiny_sweep(out, steps=120, ratios=(16.0, 32.0)):
    return Sweep(env="gym:CartPole-v1", sizes=["xs"], ratios=list(ratios), seeds=1, steps=steps, out=out,
                 overrides=OVERRIDES, device="cpu", parallel=2)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    progress = run_sweep(tiny_sweep(out), printer=lambda text: None)
    assert progress.counts() == {"queued": 0, "running": 0, "done": 2, "failed": 0}
    return out


def test_each_point_is_an_ordinary_run_with_compute_accounting(finished):
    for ratio in (16, 32):
        run = finished / f"xs-r{ratio}-s0"
        compute = json.loads((run / "compute.json").read_text())
        checkpoint_steps = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"]
        assert compute["policy_steps"] == checkpoint_steps == 120
        assert compute["updates"] == (120 - 50) * ratio // 64  # the exact ratio schedule
        assert compute["total_flops"] == pytest.approx(
            compute["updates"] * compute["flops_per_update"] + (120 - 50) * compute["flops_per_policy_step"])
        assert compute["random_steps"] == 50 and compute["counted_steps"] == 120 - 50
        assert compute["flops_per_update"] > 1e6 and compute["params"] > 0 and compute["wall_clock_s"] > 0
        assert compute["device"].startswith("cpu")
        assert (run / "config.yaml").read_text().count(f"train_ratio: {ratio:.1f}") == 1


def test_report_files_match_the_runs_logs(finished):
    assert main(["report", str(finished)]) == 0
    rows = list(csv.DictReader(open(finished / "summary.csv")))
    assert sorted(row["run"] for row in rows) == ["xs-r16-s0", "xs-r32-s0"]
    for row in rows:
        episodes = [json.loads(line) for line in (finished / row["run"] / "episodes.jsonl").read_text().splitlines()]
        compute = json.loads((finished / row["run"] / "compute.json").read_text())
        assert float(row["final_score"]) == pytest.approx(np.mean([ep["return"] for ep in episodes[-20:]]))
        assert int(row["episodes"]) == len(episodes)
        assert float(row["total_flops"]) == pytest.approx(compute["total_flops"])
        assert int(row["updates"]) == compute["updates"]
    summary = (finished / "summary.md").read_text()
    assert "| xs | 16 | 1 |" in summary and "| xs | 32 | 1 |" in summary
    for name in ("returns_vs_steps.png", "final_heatmap.png", "returns_vs_flops.png"):
        assert (finished / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_skips_finished_runs(finished):
    attempts = {p: p.read_text() for p in finished.glob("*/attempts.jsonl")}
    progress = run_sweep(tiny_sweep(finished), printer=lambda text: None)
    assert progress.counts()["done"] == 2
    assert {p: p.read_text() for p in finished.glob("*/attempts.jsonl")} == attempts  # nothing ran again


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    sweep = tiny_sweep(tmp_path, ratios=(16.0,))
    run = tmp_path / "xs-r16-s0"
    args = train_args(run, "gym:CartPole-v1", 100, "--train-ratio", "16", "--seed", "0")
    assert main(args) == 0  # as if the sweep had been stopped after a checkpoint at step 100
    run_sweep(sweep, printer=lambda text: None)
    compute = json.loads((run / "compute.json").read_text())
    assert compute["policy_steps"] == 120 and compute["updates"] == (120 - 50) * 16 // 64
    assert "continuing from" in (run / "train.log").read_text()


def test_failed_run_is_reported_with_why(tmp_path):
    sweep = tiny_sweep(tmp_path, ratios=(16.0,))
    run = tmp_path / "xs-r16-s0"
    assert main(train_args(run, "gym:CartPole-v1", 100, "--set", "dims.units=48")) == 0  # another model
    lines = []
    progress = run_sweep(sweep, printer=lines.append)
    assert progress.counts()["failed"] == 1
    why = progress.why[Point("xs", 16.0, 0)]
    assert "holds a run this command does not match:" in why and "dims.units: the run has 48, this command gives 32" in why
    assert f"failed xs-r16-s0: dreamer: error: {run} holds a run this command does not match" in lines[-1]


def test_progress_view_shows_the_grid():
    sweep = Sweep(env="gym:CartPole-v1", sizes=["xs", "s"], ratios=[64, 256], seeds=2, steps=10, out=None)
    progress = Progress(sweep, printer=lambda text: None)
    progress.set(Point("xs", 64, 0), "done")
    progress.set(Point("xs", 64, 1), "running")
    progress.set(Point("s", 256, 1), "failed", "out of memory")
    text = progress.render()
    assert "queued 5, running 1, done 1, failed 1" in text
    rows = [line.split() for line in text.splitlines()]
    assert ["xs", "DR", ".."] in rows and ["s", "..", ".F"] in rows
    assert "failed s-r256-s1: out of memory" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--sizes", "xs,xxl"], "unknown size 'xxl'"),
        (["--train-ratios", "a,b"], "bad list 'a,b'; expected comma-separated float values"),
        (["--backend", "slurm"], "unknown --backend 'slurm'"),
    ],
)
def test_sweep_bad_input(tmp_path, capsys, argv, message):
    args = {"--sizes": "xs", "--train-ratios": "16", "--backend": "local"}
    args.update(dict(zip(argv[::2], argv[1::2])))
    flat = [item for pair in args.items() for item in pair]
    assert main(["sweep", "--env", "gym:CartPole-v1", "--steps", "10", "--out", str(tmp_path), *flat]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_report_without_runs(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no finished runs" in capsys.readouterr().err


def test_ray_backend_on_a_local_instance(tmp_path):
    pytest.importorskip("ray")
    progress = run_sweep(tiny_sweep(tmp_path), printer=lambda text: None, backend="ray", cpus_per_run=1)
    assert progress.counts()["done"] == 2
    for ratio in (16, 32):
        compute = json.loads((tmp_path / f"xs-r{ratio}-s0" / "compute.json").read_text())
        assert compute["updates"] == (120 - 50) * ratio // 64
        assert not (tmp_path / f"xs-r{ratio}-s0" / ".running").exists()


def test_ray_backend_missing_package_is_a_clear_error(tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("no ray")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    monkeypatch.delitem(sys.modules, "ray", raising=False)
    with pytest.raises(ConfigError) as info:
        run_sweep(tiny_sweep(tmp_path), printer=lambda text: None, backend="ray")
    assert "--backend ray needs the 'ray' package" in str(info.value)
    assert "pip install 'dreamer-rl[ray]'" in str(info.value)


def test_custom_widths_in_a_sweep(tmp_path):
    from dreamer.sweep import parse_size

    assert parse_size("m") == ("m", [])
    assert parse_size("w64:64/8/48/2") == ("w64", ["dims.deter=64", "dims.cnn_depth=8", "dims.units=48",
                                                    "dims.layers=2", "encoder.mlp_units=48", "encoder.mlp_layers=2",
                                                    "decoder.mlp_units=48", "decoder.mlp_layers=2"])
    with pytest.raises(ConfigError, match="bad size 'w:1/2/3'; accepted: a preset"):
        parse_size("w:1/2/3")
    sweep = Sweep(env="gym:CartPole-v1", sizes=["w64:64/8/48/2", "xs"], ratios=[32], seeds=1, steps=10, out=tmp_path)
    assert [p.name for p in sweep.points()] == ["w64-r32-s0", "xs-r32-s0"]
    cfg = sweep.config(Point("w64", 32, 0))
    assert (cfg.rssm.deter, cfg.actor.units, cfg.actor.layers) == (64, 48, 2)
    assert (cfg.encoder.mlp_units, cfg.decoder.mlp_layers) == (48, 2)
    assert cfg.logdir == str(tmp_path / "w64-r32-s0")
    command = sweep.command(Point("w64", 32, 0))
    assert "dims.units=48" in command and command[command.index("--size") + 1] == "xs"
    assert sweep.config(Point("xs", 32, 0)).rssm.deter == 256


def test_a_2024_sweep_scales_custom_widths_as_its_presets(tmp_path):
    from dreamer.sweep import count_flops, parse_size

    assert parse_size("d32:32", "2024") == ("d32", ["v2024.dims.units=32", "v2024.dims.deter=256",
                                                     "v2024.dims.classes=2", "v2024.dims.depth=2"])
    with pytest.raises(ConfigError, match="NAME:D with D a multiple of 8"):
        parse_size("d:30", "2024")
    sweep = Sweep(env="gym:CartPole-v1", sizes=["d32:32", "size1m"], ratios=[64], seeds=1, steps=10, out=tmp_path,
                  recipe="2024", overrides=["v2024.coder_layers=1"])
    cfg = sweep.config(Point("d32", 64, 0))
    assert cfg.recipe == "2024" and (cfg.v2024.dims.units, cfg.v2024.dims.deter) == (32, 256)
    command = sweep.command(Point("d32", 64, 0))
    assert command[command.index("--recipe") + 1] == "2024" and command[command.index("--size") + 1] == "size1m"
    small, preset = count_flops(sweep, "d32"), count_flops(sweep, "size1m")
    assert 0 < small["params"] < preset["params"] and 0 < small["flops_per_update"] < preset["flops_per_update"]


def test_report_bands_are_student_t_intervals():
    from dreamer.report import mean_and_band

    curves = np.array([[1.0, np.nan, 2.0], [3.0, np.nan, 2.0], [5.0, 7.0, 2.0]])
    mean, low, high = mean_and_band(curves)
    # point 0: mean 3, std 2, n 3: t(0.975, 2) = 4.303, half width 4.303 * 2 / sqrt(3) = 4.969
    assert mean[0] == pytest.approx(3.0) and high[0] - mean[0] == pytest.approx(4.3027 * 2 / 3 ** 0.5, rel=1e-4)
    assert low[1] == high[1] == mean[1] == 7.0  # one seed: no band
    assert low[2] == high[2] == 2.0  # no spread


def test_progress_view_of_a_2024_sweep_with_a_custom_width():
    """Under recipe 2024 a custom width is NAME:D; the view names its rows as the points do."""
    sweep = Sweep(env="gym:CartPole-v1", sizes=["d32:32", "size1m"], ratios=[64], seeds=1, steps=10, out=None,
                  recipe="2024")
    progress = Progress(sweep, printer=lambda text: None)
    progress.set(Point("d32", 64, 0), "done")
    rows = [line.split() for line in progress.render().splitlines()]
    assert ["d32", "D"] in rows and ["size1m", "."] in rows


def test_compute_json_charges_no_policy_flops_for_the_random_prefill(tmp_path, monkeypatch):
    """Two envs, prefill 50: the iterations from steps 0, 2, ..., 48 act at random (50 steps), and
    the policy FLOPs are charged for the other 70 of 120; the ratio counted 70 steps."""
    from dreamer import sweep as sweep_module

    payload = {"ratio": {"updates": 17, "steps": 70}, "progress": {"step": 120}}
    monkeypatch.setattr(sweep_module.checkpoint, "resolve", lambda run: (run, payload))
    sweep = Sweep(env="gym:CartPole-v1", sizes=["xs"], ratios=[16.0], seeds=1, steps=120, out=tmp_path,
                  overrides=[*OVERRIDES, "run.envs=2"])
    flops = {"params": 10, "flops_per_update": 1000.0, "flops_per_policy_step": 3.0}
    record = sweep_module.account(sweep, Point("xs", 16.0, 0), flops, 1.0)
    assert record["random_steps"] == 50 and record["counted_steps"] == 70
    assert record["total_flops"] == 17 * 1000.0 + 70 * 3.0
    sweep = Sweep(env="gym:CartPole-v1", sizes=["xs"], ratios=[16.0], seeds=1, steps=120, out=tmp_path,
                  overrides=[*OVERRIDES, "run.envs=4", "run.prefill=66"])  # from 0, 4, ..., 64: 68 steps
    assert sweep_module.account(sweep, Point("xs", 16.0, 0), flops, 1.0)["random_steps"] == 68


def test_policy_flops_are_counted_uncompiled(tmp_path, monkeypatch):
    """With run.compile=on the policy step's FLOPs are those of the eager step: a compiled graph
    runs kernels the FLOP counter does not see, so the count must not go through one."""
    from dreamer import compiler
    from dreamer.sweep import count_flops

    def refuse(*args, **kwargs):
        raise AssertionError("count_flops ran a compiled function")

    monkeypatch.setattr(compiler.Compiled, "__call__", refuse)
    counts = {}
    for setting in ("off", "on"):
        sweep = Sweep(env="gym:CartPole-v1", sizes=["xs"], ratios=[16.0], seeds=1, steps=10, out=tmp_path,
                      overrides=[*OVERRIDES, f"run.compile={setting}"], device="cpu")
        counts[setting] = count_flops(sweep, "xs")
    assert counts["on"] == counts["off"] and counts["on"]["flops_per_policy_step"] > 0


def budget_sweep(out, budget=10_000.0, ratios=(16.0,)):
    return Sweep(env="gym:CartPole-v1", sizes=["xs"], ratios=list(ratios), seeds=1, steps=None, out=out,
                 overrides=OVERRIDES, device="cpu", flops_budget=budget)


@pytest.mark.parametrize("ratio, start, steps", [(16.0, None, 90), (16.0, 70, 110), (32.0, None, 70)])
def test_budget_steps_are_the_fewest_that_reach_the_flops_budget(tmp_path, ratio, start, steps):
    """1,000 FLOPs per update, 3 per policy step, 64 replayed steps per update, prefill 50, budget
    10,000. Ratio 16 (an update per 4 steps), training from step 50: 90 steps give 10 updates and 40
    policy steps, 10,120 FLOPs; 89 give 9 updates, 9,117. Training from step 70 (the replay filled
    later): 110 steps give 10 updates and 60 policy steps, 10,180; 109 give 9,177. Ratio 32 (an
    update per 2 steps): 70 steps give 10 updates and 20 policy steps, 10,060."""
    from dreamer.sweep import budget_steps, training_flops

    flops = {"flops_per_update": 1000.0, "flops_per_policy_step": 3.0}
    sweep = budget_sweep(tmp_path, ratios=(ratio,))
    assert budget_steps(sweep, Point("xs", ratio, 0), flops, start) == steps
    begin = 50 if start is None else start
    assert training_flops(steps - 1, begin, 50, ratio, 64, flops) < 10_000 <= training_flops(steps, begin, 50, ratio,
                                                                                              64, flops)


def test_a_budgeted_run_that_started_training_late_runs_on_to_the_budget(tmp_path, monkeypatch):
    """The first attempt (90 steps, as if training began after the prefill) counted only 20 of its
    90 steps: training began at 70, so it ran on to 110 steps, which reach the budget."""
    from dreamer import sweep as sweeps

    runs, totals = [], iter([(9_000.0, 90, 20), (10_180.0, 110, 40)])
    monkeypatch.setattr(sweeps, "run_point", lambda sweep, point, threads, steps: runs.append(steps) or (True, 0, ""))

    def account(sweep, point, flops, wall_clock):
        total, steps, counted = next(totals)
        return {"total_flops": total, "policy_steps": steps, "counted_steps": counted}

    monkeypatch.setattr(sweeps, "account", account)
    flops = {"flops_per_update": 1000.0, "flops_per_policy_step": 3.0}
    assert sweeps.train_point(budget_sweep(tmp_path), Point("xs", 16.0, 0), flops, 1) == (True, "")
    assert runs == [90, 110]


def test_flops_budget_sweep_runs_each_size_to_the_budget(tmp_path):
    """A real run under a budget of the FLOPs 60 steps take at ratio 16 (prefill 50: 2 updates and
    10 policy steps): it stops at 60 steps, its counted FLOPs at or above the budget and 59 steps'
    (a policy step fewer) below it."""
    from dreamer.sweep import flops_table, training_flops

    probe = budget_sweep(tmp_path)
    flops = flops_table(probe, lambda text: None)["xs"]
    budget = training_flops(60, 50, 50, 16.0, 64, flops)
    progress = run_sweep(budget_sweep(tmp_path, budget=budget), printer=lambda text: None)
    assert progress.counts()["done"] == 1
    compute = json.loads((tmp_path / "xs-r16-s0" / "compute.json").read_text())
    assert compute["policy_steps"] == 60 and compute["updates"] == 2 and compute["flops_budget"] == budget
    assert compute["total_flops"] >= budget > training_flops(59, 50, 50, 16.0, 64, flops)


@pytest.mark.parametrize("extra", [[], ["--steps", "10", "--flops-budget", "1e9"]])
def test_sweep_takes_steps_or_a_flops_budget(tmp_path, capsys, extra):
    argv = ["sweep", "--env", "gym:CartPole-v1", "--sizes", "xs", "--train-ratios", "16", "--out", str(tmp_path)]
    assert main([*argv, *extra]) == 2
    assert "give either --steps N (env steps per run) or --flops-budget F" in capsys.readouterr().err
