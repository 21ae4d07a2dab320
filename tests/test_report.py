"""`dreamer report`'s maths on synthetic sweeps whose answers are worked out by hand."""

import math

import numpy as np
import pytest

from dreamer import report


def run(size="a", params=100, ratio=1.0, seed=0, episodes=(), policy_steps=1000, prefill=0, per_update=1,
        flops_per_update=1.0, flops_per_policy_step=0.0, **extra):
    """A run as `report.collect` gives it; `episodes` are (end step, return) pairs or full records."""
    records = [ep if isinstance(ep, dict) else {"step": ep[0], "return": ep[1]} for ep in episodes]
    return {"run": f"{size}-r{ratio:g}-s{seed}", "size": size, "train_ratio": ratio, "seed": seed, "params": params,
            "policy_steps": policy_steps, "prefill": prefill, "replayed_per_update": per_update,
            "flops_per_update": flops_per_update, "flops_per_policy_step": flops_per_policy_step,
            "updates": 0, "episodes": len(records), "_episodes": records,
            "final_score": report.final_score(records, 20), **extra}


def test_random_level_of_a_2024_run_comes_from_the_episodes_before_its_first_update():
    """No prefill: the ratio counted 900 of 1,000 steps, so training began after step 100 and the
    first update (one per step at ratio 1) came at step 101. The episodes ended by then score 10,
    20 and 30: random play is 20, and 4 levels run from above it to the best score, 60."""
    runs = [run(episodes=[(40, 10.0), (90, 20.0), (101, 30.0), (500, 60.0)], counted_steps=900)]
    assert report.first_update_step(runs[0]) == 101
    assert report.random_level(runs) == 20.0
    fit = report.intrinsic_performance(runs, np.array([100.0, 500.0, 1000.0]), 1, levels=4, samples=10)
    assert fit["levels"] == pytest.approx([30.0, 40.0, 50.0, 60.0])


def test_random_level_of_a_run_without_counted_steps_comes_from_its_prefill():
    """A compute.json without `counted_steps`: training began after the prefill (100 steps); at
    ratio 16 with 64 replayed steps an update every 4 steps, the first at step 104."""
    runs = [run(ratio=16.0, per_update=64, prefill=100, episodes=[(50, 10.0), (104, 20.0), (105, 500.0)]),
            run(prefill=0, episodes=[(1, 99.0), (2, 7.0)], counted_steps=1000)]  # trained from its first step
    assert report.first_update_step(runs[0]) == 104 and report.first_update_step(runs[1]) == 1
    assert report.random_level(runs) == pytest.approx(43.0)  # (10 + 20 + 99) / 3
    assert report.random_level(runs[:1]) == 15.0
    assert report.random_level([run(episodes=[(500, 1.0)], counted_steps=600)]) is None


def crafter_episode(step, wood, table):
    return {"step": step, "return": wood + table, "achievement_collect_wood": wood, "achievement_place_table": table}


def test_crafter_curves_and_the_random_level_are_crafter_scores_over_a_window():
    """Two achievements. Before the first update: wood in 1 of 2 episodes, table in none, so random
    play scores exp((ln 51 + ln 1) / 2) - 1 = sqrt(51) - 1 (its mean return, 0.5, is another unit).
    The 2 episodes in the last 500 steps unlock both (score 100); over all 4 episodes it would be
    sqrt(76 * 51) - 1."""
    episodes = [crafter_episode(50, 1, 0), crafter_episode(90, 0, 0), crafter_episode(500, 1, 1),
                crafter_episode(900, 1, 1)]
    runs = [run(episodes=episodes, counted_steps=900)]
    assert report.random_level(runs) == pytest.approx(math.sqrt(51) - 1)
    curve = report.score_curve(runs[0], np.array([90.0, 900.0]), window_steps=500)
    assert curve == pytest.approx([math.sqrt(51) - 1, 100.0])
    assert report.final_score(episodes, 2) == pytest.approx(100.0)


def test_the_flops_frontier_is_over_seed_means_as_the_fit():
    """Two seeds end at 181 and 124: the frontier in returns_vs_flops.png and the fit's top level
    are both their mean, 152.5, not the better seed's 181."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [run(seed=0, episodes=[(100, 10.0), (1000, 181.0)]), run(seed=1, episodes=[(100, 20.0), (1000, 124.0)])]
    grid = np.array([100.0, 1000.0])
    fit = report.intrinsic_performance(runs, grid, 1, levels=[100.0, 152.5, 181.0], samples=10)
    assert fit["levels"] == [100.0, 152.5]
    fig = report._plot_flops(plt, runs, grid, 1, ["a"], [1.0])
    frontier = [line for line in fig.axes[0].lines if line.get_label().startswith("frontier")]
    assert max(frontier[0].get_ydata()) == 152.5
    plt.close(fig)


def test_flops_charge_no_policy_step_for_the_random_prefill():
    """Prefill 50, ratio 16, 64 steps per update, 1,000 FLOPs per update, 3 per policy step: by
    step 40 nothing is charged; by step 120, 70 * 16 // 64 = 17 updates and 70 policy steps."""
    prefilled = run(ratio=16.0, per_update=64, prefill=50, flops_per_update=1000.0, flops_per_policy_step=3.0)
    assert report.flops_at(prefilled, np.array([40, 120])) == pytest.approx([0.0, 17 * 1000 + 70 * 3])
    # recipe 2024: no prefill, so every step runs the policy; updates from step 100 (900 of 1,000 counted)
    waited = run(ratio=16.0, per_update=64, flops_per_update=1000.0, flops_per_policy_step=3.0, counted_steps=900)
    assert report.flops_at(waited, np.array([100, 1000])) == pytest.approx([300.0, 225 * 1000 + 3000])


def test_summary_std_over_seeds_is_the_sample_std(tmp_path):
    """Final scores 1 and 3: sample std (ddof=1) sqrt(2) = 1.4, as the bands use, not 1."""
    runs = [run(seed=0, episodes=[(10, 1.0)]), run(seed=1, episodes=[(10, 3.0)]), run(size="b", episodes=[(10, 5.0)])]
    report.write_tables(runs, tmp_path, report.intrinsic_performance(runs, np.array([10.0]), 1, samples=10))
    summary = (tmp_path / "summary.md").read_text()
    assert "| a | 1 | 2 | 2 +- 1.4 |" in summary and "| b | 1 | 1 | 5 +- n/a |" in summary
    assert "ddof=1" in summary


def test_curves_average_the_episodes_ending_in_a_window_of_env_steps():
    """Episodes end at steps 10, 50, 120, 130 and 300; a window of 100 steps ending at 50 holds the
    first two (1.5), at 130 the three from 50 (3), at 300 and 350 the last (5), at 450 none."""
    one = run(episodes=[(10, 1.0), (50, 2.0), (120, 3.0), (130, 4.0), (300, 5.0)])
    curve = report.score_curve(one, np.array([50, 130, 300, 350, 450]), window_steps=100)
    assert curve[:4] == pytest.approx([1.5, 3.0, 5.0, 5.0]) and np.isnan(curve[4])


def line_runs(seeds=1):
    """Three sizes (10, 100 and 1,000 parameters) whose score at each grid step is set by one episode
    ending there; training FLOPs equal env steps (no update cost, a policy FLOP per step). Between
    grid points the curves are lines in FLOPs: size 10 crosses 1 at 50 + 100 / 2 = 100, size 100
    crosses 2 at 5,000 + 10,000 / 2 = 10,000, size 1,000 crosses 3 at 500,000 + 10^6 / 2 = 10^6, and
    none crosses a level before the one the smaller size reached it: N* = C*^(1/2) exactly."""
    grid = [50, 150, 5_000, 15_000, 500_000, 1_500_000, 2_000_000]
    values = {10: [0.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5], 100: [0.0, 1.0, 1.5, 2.5, 2.5, 2.5, 2.5],
              1000: [0.0, 0.0, 1.0, 2.0, 2.5, 3.5, 3.5]}
    return np.array(grid, dtype=float), [
        run(size=f"n{params}", params=params, seed=seed, policy_steps=grid[-1], flops_per_update=0.0,
            flops_per_policy_step=1.0, episodes=list(zip(grid, scores)))
        for params, scores in values.items() for seed in range(seeds)]


def test_the_frontier_of_three_known_lines_gives_the_known_power_law():
    grid, runs = line_runs()
    fit = report.intrinsic_performance(runs, grid, 1, levels=[1.0, 2.0, 3.0], samples=20)
    assert fit["compute"] == pytest.approx([100.0, 10_000.0, 1_000_000.0])  # between grid points
    assert fit["params"] == [10, 100, 1000] and fit["censored"] == [False, False, False]
    assert fit["exponent"] == pytest.approx(0.5) and fit["coefficient"] == pytest.approx(1.0)
    assert fit["exponent_ci"] == pytest.approx((0.5, 0.5))  # one seed per cell: nothing to resample
    assert "b = 0.500, 95% bootstrap interval [0.500, 0.500]" in report.describe_fit(fit)


@pytest.mark.parametrize("levels, sizes", [([1.0, 1.2, 1.4], "1 distinct size"), ([1.0, 2.0], "2 distinct sizes")])
def test_no_exponent_from_fewer_than_three_sizes_on_the_frontier(levels, sizes):
    """Size 10 wins every level up to 1.5 (a least-squares slope through it alone is 0); two sizes
    give a slope set by where the frontier switches size."""
    grid, runs = line_runs()
    fit = report.intrinsic_performance(runs, grid, 1, levels=levels, samples=20)
    assert fit["exponent"] is None and fit["exponent_ci"] is None and fit["exponent_share"] == 0.0
    assert report.describe_fit(fit).splitlines()[-1].endswith(
        f"no exponent: {sizes} on the frontier, a power law needs at least 3")


def test_bootstrap_over_seeds_gives_each_frontier_point_an_interval(tmp_path):
    """One size, two seeds scoring 0, 2, 4 (seed 0) and 0, 1, 2 (seed 1) at steps 100, 200, 300,
    compute = steps. A resample holds seed 0 twice (probability 1/4), both (1/2: the mean 0, 1.5, 3)
    or seed 1 twice (1/4). Level 1 is crossed at 150, 166.7 or 200: interval [150, 200]. Level 3 at
    250 or 300, both in the last interval, so at the runs' last point (censored, as the full data's
    300 is), or never: reached in 3/4 of the resamples, interval [250, 300]."""
    runs = [run(seed=seed, policy_steps=300, flops_per_update=0.0, flops_per_policy_step=1.0,
                episodes=[(100, 0.0), (200, top / 2), (300, top)]) for seed, top in ((0, 4.0), (1, 2.0))]
    fit = report.intrinsic_performance(runs, np.array([100.0, 200.0, 300.0]), 1, levels=[1.0, 3.0], samples=4000)
    assert fit["compute"] == pytest.approx([100 + 100 / 1.5, 300.0]) and fit["censored"] == [False, True]
    assert fit["compute_ci"] == [pytest.approx((150.0, 200.0)), pytest.approx((250.0, 300.0))]
    assert fit["params_ci"] == [(100, 100), (100, 100)]
    assert fit["reached_share"][0] == 1.0 and fit["reached_share"][1] == pytest.approx(0.75, abs=0.02)
    report.write_tables(runs, tmp_path, fit)
    rows = [line for line in (tmp_path / "summary.md").read_text().splitlines() if line.startswith("| 3 | 300 |")]
    assert rows[0].startswith("| 3 | 300 | [250, 300] | 100 | [100, 100] | a | 1 |") and rows[0].endswith("| yes |")


def write_sweep(out, runs):
    """A `dreamer sweep` folder holding `runs`: compute.json and episodes.jsonl per run."""
    import json

    for one in runs:
        folder = out / one["run"]
        folder.mkdir(parents=True)
        compute = {k: v for k, v in one.items() if not k.startswith("_") and k not in ("run", "episodes", "final_score")}
        (folder / "compute.json").write_text(json.dumps(compute))
        (folder / "episodes.jsonl").write_text("".join(json.dumps(ep) + "\n" for ep in one["_episodes"]))


def test_report_of_a_sweep_folder_writes_the_frontier_with_intervals_and_censoring(tmp_path, capsys):
    """The three lines of `line_runs`, two identical seeds each, through `dreamer report`: the
    20 levels from the lowest score to 3.5 hold all three sizes; the top level, 3.5, is reached
    only at size 1,000's 1.5M-step point, before its last (2M): not censored; the curves are
    smoothed over a tenth of 2M steps."""
    from dreamer.cli import main

    _, runs = line_runs(seeds=2)
    write_sweep(tmp_path, runs)
    assert main(["report", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    summary = (tmp_path / "summary.md").read_text()
    assert "95% bootstrap interval" in printed and "3 sizes" in printed
    assert "Curves smoothed over windows of 200,000 env steps; random play scores unknown" in summary
    assert "| score level | C* (training FLOPs) | C* interval |" in summary
    assert "| size | train ratio | 25% (" in summary and "Per train ratio, the size that reaches" in summary
    for name in ("returns_vs_steps.png", "final_heatmap.png", "returns_vs_flops.png", "intrinsic_performance.png",
                 "data_efficiency.png", "ratio_frontiers.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_frontier_table_names_the_size_and_ratio_behind_each_point(tmp_path):
    """The known lines of `line_runs` at levels 1, 2, 3 (the 1,000-parameter size at ratio 4)."""
    grid, runs = line_runs()
    runs[2]["train_ratio"] = 4.0
    fit = report.intrinsic_performance(runs, grid, 1, levels=[1.0, 2.0, 3.0], samples=20)
    assert fit["size"] == ["n10", "n100", "n1000"] and fit["train_ratio"] == [1.0, 1.0, 4.0]
    report.write_tables(runs, tmp_path, fit)
    summary = (tmp_path / "summary.md").read_text()
    assert "| N* interval | size | train ratio | resamples reaching it | censored |" in summary
    assert "| 1 | 100 | [100, 100] | 10 | [10, 10] | n10 | 1 | 100% |  |" in summary
    assert "| 3 | 1e+06 | [1e+06, 1e+06] | 1,000 | [1,000, 1,000] | n1000 | 4 | 100% |  |" in summary


def test_lemma_1_and_the_compute_optimal_size_by_hand():
    """alpha_N = alpha_E = 1, compute C = N E (k = 1, gamma = 1), N_c = 1: Lemma 1 gives beta =
    1 * 1 / (1 + 1) = 1/2, and the shares p = q = 1, w = 2 give E_c = (1/2)(1/2) / 1 = 1/4. At I = 100,
    Eq. 1 reads 1/10 = 1/N + 1/(4E), so E = 1 / (4 (1/10 - 1/N)) and N E is least at N = 20 (E = 5):
    100 = I, and N_opt = 2 C^(1/2). With gamma = 2 (C = N^2 E): beta = 1 / (2 + 1) = 1/3, p = 2,
    w = 3, E_c = (2/3)^2 (1/3) = 4/27 and N_opt = (2/3)^-1 C^(1/3)."""
    assert report.lemma_beta(1.0, 1.0) == 0.5 and report.critical_steps(1.0, 1.0, 1.0, 1.0) == 0.25
    sizes = np.linspace(10.5, 100, 20_000)
    steps = 1 / (4 * (0.1 - 1 / sizes))
    assert np.exp(report.log_intrinsic(20.0, 5.0, 1.0, 1.0, 1.0, 0.25, 0.5)) == pytest.approx(100.0)
    assert (sizes * steps).min() == pytest.approx(100.0)
    assert sizes[(sizes * steps).argmin()] == pytest.approx(20, abs=0.01)
    assert report.optimal_size(1.0, 1.0, 1.0) == pytest.approx((2.0, 0.5))
    assert report.lemma_beta(1.0, 1.0, gamma=2.0) == pytest.approx(1 / 3)
    assert report.critical_steps(1.0, 1.0, 1.0, 1.0, gamma=2.0) == pytest.approx(4 / 27)
    assert report.optimal_size(1.0, 1.0, 1.0, gamma=2.0) == pytest.approx((1.5, 1 / 3))


TRUE = {"alpha_n": 0.5, "alpha_e": 1.0, "n_c": 1.0}  # and compute C = 1e-4 N E
STEP_GRID = np.geomspace(1e3, 1e6, 400)  # 1.7% apart


def eq1_runs(sizes=(1e2, 1e3, 1e4, 1e5), seeds=1, spread=0.0, k=1e-4):
    """Runs whose score is log10 I(N, E) of Eq. 1 with the constants `TRUE` (beta = 1/3 and
    E_c = (2/3)^2 (1/3) / 1e-4 = 1,481.5 by Lemma 1), an episode ending at every point of
    `STEP_GRID`; seed s of a size runs as if its env steps were scaled by exp(spread * z_s), z_s
    standard normal draws (seed 0 of the generator)."""
    e_c = report.critical_steps(TRUE["alpha_n"], TRUE["alpha_e"], TRUE["n_c"], k)
    beta = report.lemma_beta(TRUE["alpha_n"], TRUE["alpha_e"])
    draws = np.random.default_rng(0).normal(size=(len(sizes), seeds))
    runs = []
    for i, params in enumerate(sizes):
        for seed in range(seeds):
            steps = STEP_GRID / np.exp(spread * draws[i, seed])
            scores = report.log_intrinsic(params, steps, TRUE["alpha_n"], TRUE["alpha_e"], TRUE["n_c"], e_c, beta)
            runs.append(run(size=f"n{params:g}", params=int(params), seed=seed, policy_steps=STEP_GRID[-1],
                            flops_per_update=0.0, flops_per_policy_step=k * params,
                            episodes=list(zip(STEP_GRID, scores / np.log(10)))))
    return runs


EQ1_LEVELS = np.linspace(2.75, 5.75, 13)  # log10 I; each reached by two to four of the sizes


def eq1_fit(runs, levels=EQ1_LEVELS):
    return report.joint_fit(report.cell_curves(runs, STEP_GRID, 1), levels)


def test_the_joint_fit_recovers_the_constants_of_eq_1():
    """Noise-free curves of Eq. 1: the fit finds alpha_N, alpha_E, N_c, hence beta, E_c and
    N_opt = 2.25 C^(2/3) (p = 2, q = 1, w = 3: (2/3)^-2 = 2.25, exponent beta / alpha_N), and the
    compute law C = 1e-4 N E. The only error is the crossings' linear interpolation between grid
    points 1.7% apart: log E off by at most (0.017)^2 / 8 = 4e-5 where the curve bends by order one in
    log E, so a relative tolerance of 1e-3 leaves a margin of 25 and still fails a fit off by 0.1%."""
    fit = eq1_fit(eq1_runs())
    assert fit["why"] is None and fit["sizes"] == 4 and fit["levels"] == 13
    truth = {**TRUE, "beta": 1 / 3, "e_c": (2 / 3) ** 2 / 3 / 1e-4, "coefficient": 2.25, "exponent": 2 / 3,
             "k": 1e-4, "gamma": 1.0}
    assert {key: fit[key] for key in truth} == pytest.approx(truth, rel=1e-3)


def test_the_joint_fit_has_bootstrap_intervals_over_seeds():
    """Three identical seeds per size: every resample is the data, so each interval is the point
    itself. Seeds whose env steps are scaled by exp(0.1 z) (z standard normal): the intervals have
    width and hold the point estimates and the true exponents."""
    runs = eq1_runs(seeds=3)
    fit = report.intrinsic_performance(runs, STEP_GRID, 1, levels=list(EQ1_LEVELS), samples=5)
    joint = fit["joint"][0]
    assert joint["share"] == 1.0 and joint["ci"]["exponent"] == pytest.approx((joint["exponent"],) * 2)
    curves = report.cell_curves(eq1_runs(seeds=3, spread=0.1), STEP_GRID, 1)
    point = report.joint_fit(curves, EQ1_LEVELS)
    spread = report.bootstrap_joint(curves, EQ1_LEVELS, point, samples=40)
    for key in ("alpha_n", "alpha_e", "exponent"):
        low, high = spread["ci"][key]
        assert low < high and low <= point[key] <= high
    assert spread["ci"]["alpha_n"][0] < 0.5 < spread["ci"]["alpha_n"][1]
    assert spread["ci"]["exponent"][0] < 2 / 3 < spread["ci"]["exponent"][1]
    assert "alpha_N = " in report.describe_fit(fit).splitlines()[0]


@pytest.mark.parametrize("sizes, levels, why", [
    ((1e3, 1e4), EQ1_LEVELS, "2 sizes and 6 score levels reached by two or more sizes; Eq. 1 needs at least 3 sizes"),
    ((1e2, 1e3, 1e4, 1e5), EQ1_LEVELS[:2], "3 sizes and 2 score levels reached by two or more sizes"),
])
def test_no_joint_fit_from_too_few_sizes_or_levels(sizes, levels, why):
    """After the first 1/64 of the runs (from 15,625 steps) log10 I spans 2.69 to 4.44 for 1e3
    parameters and 2.94 to 5.82 for 1e4: both reach the 6 levels 3 .. 4.25. Levels 2.75 and 3: the
    first reached by 1e2 (2.13 to 2.98) and 1e3, the second by 1e3 and 1e4, while 1e5 starts at 3.03,
    above both (when it got there is unknown): 3 sizes, 2 levels."""
    fit = eq1_fit(eq1_runs(sizes=sizes), levels)
    assert fit["why"].startswith("no joint fit: ") and why in fit["why"] and "alpha_n" not in fit


def test_no_joint_fit_where_size_makes_no_difference():
    """Every size plays as the largest: its N term can be made to vanish (N_c far below every size)
    with any alpha_N, which the data then do not determine."""
    runs = eq1_runs()
    for one in runs:
        one["_episodes"] = runs[-1]["_episodes"]
    fit = eq1_fit(runs, np.linspace(3.2, 6.5, 13))
    assert "the size term (N_c/N)^alpha_N: no size nears its plateau" in fit["why"]


def efficiency_runs():
    """Size a (100 parameters, two identical seeds) scores 0, 10, 20, 30 and size b (140, one seed) 0,
    20, 40, 40 at steps 100 .. 400, an episode ending at each; compute = parameters x steps."""
    return [run(size=size, params=params, seed=seed, policy_steps=400, flops_per_update=0.0,
                flops_per_policy_step=float(params), episodes=list(zip((100, 200, 300, 400), scores)))
            for size, params, seeds, scores in (("a", 100, 2, (0, 10, 20, 30)), ("b", 140, 1, (0, 20, 40, 40)))
            for seed in range(seeds)]


def test_steps_to_reach_each_score_by_size_and_ratio(tmp_path):
    """No random level, so the targets run from the lowest score (0) to the best (40): 10, 20, 30.
    With a window of 100 steps each point speaks for its window's centre, 50 steps back: a reaches
    10, 20, 30 at 150, 250, 350 (its last point: censored); b reaches 10 halfway between 50 (0) and
    150 (20), at 100, then 20 at 150 and 30 halfway between 150 (20) and 250 (40), at 200."""
    study = report.study_analyses(efficiency_runs(), np.array([100.0, 200.0, 300.0, 400.0]), 100, samples=50)
    assert list(study["efficiency_levels"]) == pytest.approx([10.0, 20.0, 30.0])
    a, b = study["efficiency"]
    assert list(a["steps"]) == pytest.approx([150.0, 250.0, 350.0]) and list(a["censored"]) == [False, False, True]
    assert list(b["steps"]) == pytest.approx([100.0, 150.0, 200.0]) and not b["censored"].any()
    assert a["ci"][1] == pytest.approx((250.0, 250.0))  # identical seeds: every resample is the data
    lines = report.efficiency_table(study)
    assert "| a | 1 | 150 [150, 150] | 250 [250, 250] | 350 [350, 350] (censored) |" in lines


def test_per_ratio_frontier_names_the_cheapest_size_with_its_steps_and_flops():
    """The frontier picks by FLOPs at the grid points (a window's end): score 10 costs a 200 x 100 =
    20,000 and b 150 x 140 = 21,000 (a wins); 20 costs a 30,000, b 200 x 140 = 28,000; 30 costs a
    40,000, b 250 x 140 = 35,000 (b wins both). The winner's steps are at its window centre and its
    FLOPs there: a 150 steps and 15,000; b 150 and 21,000; b 200 and 28,000."""
    study = report.study_analyses(efficiency_runs(), np.array([100.0, 200.0, 300.0, 400.0]), 100, samples=10)
    (row,) = study["ratio_frontiers"]
    assert row["size"] == ["a", "b", "b"]
    assert list(row["steps"]) == pytest.approx([150.0, 150.0, 200.0])
    assert list(row["compute"]) == pytest.approx([15_000.0, 21_000.0, 28_000.0])
    lines = report.efficiency_table(study)
    assert "| 1 | 150 steps, 1.5e+04 FLOPs (a) | 150 steps, 2.1e+04 FLOPs (b) | 200 steps, 2.8e+04 FLOPs (b) |" in lines


def test_wall_clock_from_the_rates_metrics_jsonl_logs():
    """Records at steps 100 and 300: 100 env steps at 50/s (2 s) and 10 updates at 10/s (1 s), then
    200 steps at 100/s (2 s) and 30 updates at 30/s (1 s): 3 s and 6 s, scaled to the run's 12 s
    (its logging and checkpoints): 6 s by step 100 and 12 s by step 300; a record without rates
    adds nothing, and a log without any gives no clock."""
    records = [{"step": 100, "perf/env_steps_per_second": 50.0, "perf/updates": 10, "perf/updates_per_second": 10.0},
               {"step": 200, "train/loss": 1.0},
               {"step": 300, "perf/env_steps_per_second": 100.0, "perf/updates": 40, "perf/updates_per_second": 30.0}]
    steps, seconds = report.clock_curve(records, 12.0)
    assert list(steps) == [0, 100, 300] and list(seconds) == pytest.approx([0.0, 6.0, 12.0])
    assert list(report.wall_clock_at({"_clock": (steps, seconds)}, [50, 200])) == pytest.approx([3.0, 9.0])
    assert report.clock_curve(records[1:2], 12.0) is None and report.wall_clock_at({}, [1]) is None


def test_the_wall_clock_frontier_names_the_first_size_and_ratio_to_reach_each_score(tmp_path):
    """The runs of `efficiency_runs`, a taking 1 s per 10 steps and b 1 s per 20: a reaches 10 at
    the grid step 200 (window ends, as the FLOPs frontier) in 20 s, b at 150 in 7.5 s; 20: a 300
    steps, 30 s, b 200 steps, 10 s; 30: a 400 steps (its last point), b 250 steps, 12.5 s."""
    runs = efficiency_runs()
    for one in runs:
        per_second = 10.0 if one["size"] == "a" else 20.0
        one["_clock"] = (np.array([0.0, 400.0]), np.array([0.0, 400.0 / per_second]))
    study = report.study_analyses(runs, np.array([100.0, 200.0, 300.0, 400.0]), 100, samples=10)
    clock = study["clock_frontier"]
    assert list(clock["seconds"]) == pytest.approx([7.5, 10.0, 12.5]) and clock["size"] == ["b", "b", "b"]
    assert "| 8 s (b r1) | 10 s (b r1) | 12 s (b r1) |" in report.efficiency_table(study)
    runs[0]["_clock"] = None  # a seed that did not log: its size drops out
    assert report.study_analyses(runs, np.array([100.0, 400.0]), 100, samples=10)["clock_frontier"]["size"][0] == "b"


@pytest.fixture
def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    yield pyplot
    pyplot.close("all")


def test_mean_and_standard_error_over_seeds():
    """Seeds 1, 3, 5 at the first point: mean 3, sample std 2, standard error 2 / sqrt(3); two seeds
    1 and 3: mean 2 and error 1, so mean +- 1 s.e. spans them; one seed: no error."""
    mean, error = report.mean_and_error(np.array([[1.0, 1.0, 7.0], [3.0, 3.0, np.nan], [5.0, np.nan, np.nan]]))
    assert list(mean) == pytest.approx([3.0, 2.0, 7.0]) and list(error) == pytest.approx([2 / 3**0.5, 1.0, 0.0])


def test_curves_plot_one_colour_per_size_thin_seeds_and_a_legend_a_reader_can_read(plt):
    """Three sizes, two seeds each: 6 thin seed lines and 3 mean lines per panel, each size one
    colour of its own, and legend text at `FONT` points."""
    grid, runs = line_runs(seeds=2)
    fig = report._plot_curves(plt, runs, ["n10", "n100", "n1000"], [1.0], grid, 1)
    lines = fig.axes[0].lines
    seeds = [line for line in lines if line.get_linewidth() == report.SEED_WIDTH]
    means = [line for line in lines if line.get_linewidth() == report.MEAN_WIDTH]
    assert len(seeds) == 6 and len(means) == 3
    assert len({line.get_color() for line in means}) == 3
    assert {line.get_color() for line in seeds} == {line.get_color() for line in means}
    legend = fig.axes[0].get_legend()
    assert {text.get_fontsize() for text in legend.get_texts()} == {report.FONT}
    assert "n10 (2 seeds)" in [text.get_text() for text in legend.get_texts()]


def test_heatmap_shows_each_seed_and_flags_cells_below_random_play(plt):
    """Random play scores 20 (the episodes before the first update); size a ends at 10 and 12 (mean
    11: flagged), size b at 30 and 50 (mean 40, not flagged)."""
    runs = [run(size=size, seed=seed, counted_steps=900, episodes=[(50, 20.0), (900, final)])
            for size, finals in (("a", (10.0, 12.0)), ("b", (30.0, 50.0))) for seed, final in enumerate(finals)]
    for one in runs:
        one["final_score"] = one["_episodes"][-1]["return"]
    fig = report._plot_heatmap(plt, runs, ["a", "b"], [1.0])
    texts = [text.get_text() for text in fig.axes[0].texts]
    assert "11 (random or worse)\n(10, 12)" in texts and "40\n(30, 50)" in texts
    hatched = [patch for patch in fig.axes[0].patches if patch.get_hatch()]
    assert len(hatched) == 1 and hatched[0].get_xy() == (-0.5, -0.5)  # the cell of size a


def test_flops_axis_starts_near_where_the_frontier_rises(plt):
    """The lines of `line_runs`: the frontier (seed means) starts at 0 (sizes 100 and 1,000 at 50
    FLOPs) and first gains 5% of its rise to 3.5 (0.175) at 50 FLOPs (size 10's 0.5); the axis starts
    `LEAD_IN` below, at 5 (after the first update, at 1 FLOP), less the margin; its ticks are
    labelled as powers of ten."""
    grid, runs = line_runs()
    fig = report._plot_flops(plt, runs, grid, 1, ["n10", "n100", "n1000"], [1.0])
    assert fig.axes[0].get_xlim()[0] == pytest.approx(50 / report.LEAD_IN / report.FLOPS_MARGIN)
    assert report.power_label(2e11) == "2e11" and report.power_label(1e-3) == "1e-3"


def test_intrinsic_plot_joins_levels_of_one_size_only(plt):
    """Levels 1, 1.2 (size 10) and 2, 2.2 (size 100), 3 (size 1,000): three line pieces, none
    across a switch of size."""
    grid, runs = line_runs()
    fit = report.intrinsic_performance(runs, grid, 1, levels=[1.0, 1.2, 2.0, 2.2, 3.0], samples=5)
    assert fit["size"] == ["n10", "n10", "n100", "n100", "n1000"]
    fig = report._plot_intrinsic(plt, fit, ["n10", "n100", "n1000"], [1.0])
    pieces = [list(line.get_ydata()) for line in fig.axes[0].lines]
    assert pieces == [[1.0, 1.2], [2.0, 2.2], [3.0]]


def test_joint_fit_plot_shows_the_data_and_eq_1_per_size(plt):
    """The noise-free curves of Eq. 1 on the levels of `EQ1_LEVELS`: a dot per point of the fit and
    the fitted curve of each of the four sizes, which passes through its dots."""
    runs = eq1_runs()
    fit = {"joint": [{"train_ratio": 1.0, **eq1_fit(runs)}]}
    fig = report._plot_joint(plt, fit, [one["size"] for one in runs], [1.0])
    ax = fig.axes[0]
    assert len(ax.collections) == 4 and len(ax.lines) == 4
    data = fit["joint"][0]["data"]
    largest = data["size"] == "n1e+05"
    curve = ax.lines[3]
    assert np.interp(np.log(data["steps"][largest]), np.log(curve.get_xdata()), np.log(curve.get_ydata())) == \
        pytest.approx(np.log(data["intrinsic"][largest]), rel=1e-3)
    assert report._plot_joint(plt, {"joint": [{"why": "no joint fit"}]}, [], []) is None


def test_plots_of_a_study_whose_levels_need_no_training(tmp_path, plt):
    """A run whose steps cost no counted FLOPs (as a prefill's): every level has C* = 0, there is no
    power law to draw, and every plot is still written."""
    runs = [run(episodes=[(100, 5.0), (200, 6.0)], policy_steps=200, flops_per_update=0.0)]
    write_sweep(tmp_path, runs)
    _, fit = report.report(tmp_path)
    assert set(fit["compute"]) == {0.0} and fit["exponent"] is None
    for name in ("returns_vs_steps.png", "final_heatmap.png", "returns_vs_flops.png", "intrinsic_performance.png",
                 "data_efficiency.png", "ratio_frontiers.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
