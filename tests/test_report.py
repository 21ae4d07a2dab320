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
    fit = report.intrinsic_performance(runs, np.array([100.0, 500.0, 1000.0]), window=1, levels=4)
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
    The last 2 episodes unlock both (score 100); over all 4 episodes it would be sqrt(76 * 51) - 1."""
    episodes = [crafter_episode(50, 1, 0), crafter_episode(90, 0, 0), crafter_episode(500, 1, 1),
                crafter_episode(900, 1, 1)]
    runs = [run(episodes=episodes, counted_steps=900)]
    assert report.random_level(runs) == pytest.approx(math.sqrt(51) - 1)
    curve = report.score_curve(runs[0], np.array([90.0, 900.0]), window=2)
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
    fit = report.intrinsic_performance(runs, grid, window=1, levels=[100.0, 152.5, 181.0])
    assert fit["levels"] == [100.0, 152.5]
    fig = report._plot_flops(plt, runs, grid, window=1)
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
    report.write_tables(runs, tmp_path, report.intrinsic_performance(runs, np.array([10.0]), window=1))
    summary = (tmp_path / "summary.md").read_text()
    assert "| a | 1 | 2 | 2 +- 1.4 |" in summary and "| b | 1 | 1 | 5 +- n/a |" in summary
    assert "ddof=1" in summary
