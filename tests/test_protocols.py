"""Benchmark protocol maths against hand-computed values, and `dreamer report` on fake runs."""

import json
import math

import numpy as np
import pytest

from dreamer import protocols
from dreamer.checkpoint import atomic_write
from dreamer.cli import main
from dreamer.config import load_config, to_yaml
from dreamer.envs.crafter_env import ACHIEVEMENTS


def test_interquartile_mean_cuts_a_quarter_from_each_end():
    assert protocols.interquartile_mean(np.arange(8.0)) == 3.5  # keeps 2, 3, 4, 5
    assert protocols.interquartile_mean([1.0, 2.0, 3.0, 4.0, 100.0]) == 3.0  # n=5: one cut each side
    assert protocols.interquartile_mean([7.0, 1.0, 4.0]) == 4.0  # n=3: nothing cut


def test_aggregates_over_games_and_seeds():
    scores = {"A": [0.0, 1.0], "B": [2.0, 2.0], "C": [10.0, 0.0]}  # game means 0.5, 2, 5
    assert protocols.aggregate_mean(scores) == 2.5
    assert protocols.aggregate_median(scores) == 2.0
    assert protocols.aggregate_iqm(scores) == 1.25  # sorted 0 0 1 2 2 10 -> mean of 0 1 2 2


def test_bootstrap_resamples_seeds_within_each_game():
    constant = {"A": [1.0, 1.0, 1.0], "B": [3.0, 3.0]}
    assert protocols.bootstrap_ci(constant, protocols.aggregate_mean) == (2.0, 2.0)  # no seed spread, no width
    # one game with seeds 0 and 1: a resampled mean is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4
    low, high = protocols.bootstrap_ci({"A": [0.0, 1.0]}, protocols.aggregate_mean, samples=4000)
    assert (low, high) == (0.0, 1.0)
    spread = {g: list(np.random.default_rng(i).normal(i, 1.0, 5)) for i, g in enumerate("ABCDEF")}
    for fn in protocols.AGGREGATES.values():
        low, high = protocols.bootstrap_ci(spread, fn)
        assert low < fn(spread) < high


RLIABLE_REPS = 5000  # bootstrap samples on each side of the comparison with rliable


def test_aggregates_and_iqm_interval_agree_with_rliable():
    """The report's Atari100k aggregates and stratified-bootstrap interval against rliable (Agarwal
    et al. 2021), the field's reference code, on 5 seeds x 26 games of heavy-tailed scores.

    The point values are the same maths (rliable's IQM is scipy's 25 % trimmed mean, which also cuts
    floor(n / 4) from each end), equal up to the order of the sums. The intervals are percentile
    intervals over resamples of the seeds within each game on both sides, but drawn by different
    RNGs, so they agree in distribution only: the sample q-quantile of B draws lies at a rank whose
    share of the bootstrap distribution has standard deviation sqrt(q (1 - q) / B), and the
    difference of two independent estimates sqrt(2) times that. Each of rliable's bounds must lie
    within 4 such standard deviations of the nominal share of our own bootstrap distribution, and so
    must ours."""
    rly = pytest.importorskip("rliable.library")
    metrics = pytest.importorskip("rliable.metrics")
    rng = np.random.default_rng(0)
    matrix = rng.lognormal(rng.normal(-1.0, 1.0, 26), 0.5, (5, 26))  # (seeds, games): rliable's layout
    scores = {f"game{j}": list(matrix[:, j]) for j in range(matrix.shape[1])}
    for ours, theirs in ((protocols.aggregate_mean, metrics.aggregate_mean),
                         (protocols.aggregate_median, metrics.aggregate_median),
                         (protocols.aggregate_iqm, metrics.aggregate_iqm)):
        assert ours(scores) == pytest.approx(theirs(matrix), rel=1e-12, abs=0), ours.__name__

    drawn = []  # our bootstrap distribution: the statistic of every resample bootstrap_ci takes

    def recorded(resample):
        drawn.append(protocols.aggregate_iqm(resample))
        return drawn[-1]

    low, high = protocols.bootstrap_ci(scores, recorded, samples=RLIABLE_REPS, level=protocols.CI_LEVEL)
    np.random.seed(0)  # rliable's StratifiedBootstrap draws from numpy's global RNG
    _, intervals = rly.get_interval_estimates({"run": matrix}, lambda x: np.array([metrics.aggregate_iqm(x)]),
                                              reps=RLIABLE_REPS, confidence_interval_size=protocols.CI_LEVEL)
    their_low, their_high = intervals["run"].ravel()
    tail = (1 - protocols.CI_LEVEL) / 2
    slack = 4 * math.sqrt(2 * tail * (1 - tail) / RLIABLE_REPS)
    assert len(drawn) == RLIABLE_REPS
    for share, bounds in ((tail, (low, their_low)), (1 - tail, (high, their_high))):
        band = np.quantile(drawn, [share - slack, share + slack])
        assert all(band[0] <= bound <= band[1] for bound in bounds), (share, band, bounds)


def test_crafter_protocol_by_hand():
    blank = {f"achievement_{name}": 0.0 for name in ACHIEVEMENTS}
    episodes = [
        {**blank, "step": 100, "return": 2.0, "achievement_collect_wood": 3.0, "achievement_place_table": 1.0},
        {**blank, "step": 200, "return": 1.0, "achievement_collect_wood": 1.0},
        {**blank, "step": 300, "return": 0.0},
        {**blank, "step": 400, "return": 1.0},
        {**blank, "step": 500, "return": 9.0, "achievement_collect_diamond": 1.0},  # after the budget
    ]
    result = protocols.crafter_protocol(episodes, budget=400)
    assert result["episodes"] == 4 and result["reward"] == 1.0
    assert result["success_rates"]["collect_wood"] == 50.0 and result["success_rates"]["place_table"] == 25.0
    assert result["success_rates"]["collect_diamond"] == 0.0
    # exp((ln 51 + ln 26 + 20 * ln 1) / 22) - 1
    assert result["score"] == pytest.approx(math.exp((math.log(51) + math.log(26)) / 22) - 1)


def _fake_run(directory, env, seed, eval_return=None, episodes=()):
    directory.mkdir(parents=True)
    cfg = load_config([], {"env": env, "seed": seed})
    (directory / "config.yaml").write_text(to_yaml(cfg))
    if eval_return is not None:
        atomic_write(directory / "eval.json", lambda f: f.write(json.dumps({"mean_return": eval_return}).encode()))
    (directory / "episodes.jsonl").write_text("".join(json.dumps(ep) + "\n" for ep in episodes))


def test_report_scores_atari100k_and_crafter_runs(tmp_path, capsys):
    _fake_run(tmp_path / "pong-0", "atari100k:Pong", 0, 14.6)  # human level: 1.0
    _fake_run(tmp_path / "pong-1", "atari100k:Pong", 1, -20.7)  # random level: 0.0
    _fake_run(tmp_path / "breakout-0", "atari100k:Breakout", 0, 1.7 + (30.5 - 1.7) / 2)  # 0.5
    _fake_run(tmp_path / "pong-full", "atari:Pong", 0, 21.0)  # another protocol: left out
    blank = {f"achievement_{name}": 0.0 for name in ACHIEVEMENTS}
    _fake_run(tmp_path / "crafter-0", "crafter", 0, episodes=[
        {**blank, "step": 10_000, "return": 4.0, "length": 10_000, "achievement_collect_wood": 2.0}])

    raw, normalized = protocols.atari100k_scores(tmp_path)
    assert raw == {"Pong": [14.6, -20.7], "Breakout": [16.1]}
    assert normalized["Pong"] == pytest.approx([1.0, 0.0]) and normalized["Breakout"] == pytest.approx([0.5])
    summary, _ = protocols.atari100k_summary(raw, normalized)
    assert summary["mean"]["value"] == pytest.approx(0.5)  # game means 0.5 and 0.5
    assert summary["iqm"]["value"] == pytest.approx(0.5)  # 0, 0.5, 1: n=3, nothing cut

    assert main(["report", str(tmp_path)]) == 0
    assert "atari100k and crafter protocol results" in capsys.readouterr().out
    text = (tmp_path / "benchmarks.md").read_text()
    assert "| Pong | 2 | -3.0 +- 17.6 | 0.500 |" in text and "| iqm | 0.500 |" in text
    assert "| score | 0.23 +- 0.00 % | 14.5 +- 1.6 % |" in text  # 100 % wood: exp(ln 101 / 22) - 1 = 0.233
    assert "| reward | 4.00 +- 0.00 | 11.7 +- 1.9 |" in text
    assert (tmp_path / "crafter.png").stat().st_size > 10_000


def test_report_scores_dmc_runs_at_the_budget(tmp_path, capsys):
    # repeat 2: policy step s is env step 2s. Budget 500k env steps; its last tenth is (450k, 500k].
    _fake_run(tmp_path / "swingup-0", "dmc:cartpole_swingup", 0, episodes=[
        {"step": 100_000, "return": 100.0, "length": 500}, {"step": 240_000, "return": 700.0, "length": 500},
        {"step": 250_000, "return": 900.0, "length": 500}, {"step": 260_000, "return": 5000.0, "length": 500}])
    _fake_run(tmp_path / "swingup-1", "dmc:cartpole_swingup", 1, episodes=[
        {"step": 249_000, "return": 400.0, "length": 500}, {"step": 250_000, "return": 600.0, "length": 500}])
    # a run stopped at 100k env steps is scored over its own last tenth, (90k, 100k]
    _fake_run(tmp_path / "walker-0", "dmc:walker_walk", 0, episodes=[
        {"step": 10_000, "return": 10.0, "length": 500}, {"step": 50_000, "return": 20.0, "length": 500}])
    _fake_run(tmp_path / "humanoid-0", "dmc:humanoid_walk", 0, episodes=[
        {"step": 250_000, "return": 1.0, "length": 500}])  # not in the reference runs
    _fake_run(tmp_path / "vision-0", "dmc_vision:cartpole_swingup", 0, episodes=[
        {"step": 400_000, "return": 50.0, "length": 500}, {"step": 500_000, "return": 300.0, "length": 500}])

    runs = protocols.dmc_runs(tmp_path)
    assert runs["dmc"]["cartpole_swingup"] == [(800.0, 500_000), (500.0, 500_000)]
    assert runs["dmc"]["walker_walk"] == [(20.0, 100_000)]
    assert runs["dmc_vision"] == {"cartpole_swingup": [(300.0, 1_000_000)]}
    summary, text = protocols.dmc_summary("dmc", runs["dmc"])
    assert summary["mean"] == pytest.approx((650 + 20 + 1) / 3) and summary["median"] == pytest.approx(20.0)
    assert "| cartpole_swingup | 2 | 500,000 | 650.0 +- 150.0 | 851.0 +- 14.6 |" in text
    assert "| humanoid_walk | 1 | 500,000 | 1.0 +- 0.0 | n/a |" in text
    assert "| mean | 223.7 (3 tasks) | 335.0 | 894.2 |" in text  # reference: (851.0 + 937.5) / 2

    assert main(["report", str(tmp_path)]) == 0
    assert "dmc and dmc_vision protocol results" in capsys.readouterr().out
    written = (tmp_path / "benchmarks.md").read_text()
    assert "## DeepMind Control Suite, pixels (dmc_vision, 1,000,000 env steps)" in written
    assert "| cartpole_swingup | 1 | 1,000,000 | 300.0 +- 0.0 | 860.1 +- 11.4 |" in written
