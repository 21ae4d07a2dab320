"""Every suite trains under both recipes with its own settings (frames, action repeat, action set),
through `dreamer train` as the README runs it, at tiny widths, a low train ratio and one env
(parallel envs are tested in tests/test_train.py and tests/test_faults.py). Pairs trained elsewhere
are left out: gym (tests/test_train.py, tests/test_v2024_agent.py), P1 crafter (tests/test_train.py),
P1 dmc and dmc_vision (tests/test_dmc.py), minerl (tests/test_minerl.py)."""

import numpy as np
import pytest

from dreamer.cli import main
from dreamer.logging import read_jsonl
from tests.conftest import FAST, TINY_2024

WINDOW = ["replay.batch_size=2", "replay.batch_length=8", "run.video_every=0", "run.eval_episodes=0", "run.envs=1"]
OVERRIDES = {"2023": [*FAST, *WINDOW, "run.log_every=16"], "2024": [*TINY_2024, *WINDOW, "run.log_every=16"]}
NEEDS = {"atari": "ale_py", "atari100k": "ale_py", "dmc": "dm_control", "dmc_vision": "dm_control"}


@pytest.mark.parametrize("recipe, env", [
    ("2024", "crafter"), ("2024", "atari:Pong"), ("2024", "atari100k:Pong"),
    ("2024", "dmc:cartpole_balance"), ("2024", "dmc_vision:cartpole_balance"),
    ("2023", "atari:Pong"), ("2023", "atari100k:Pong"),
])
def test_the_suite_trains_under_the_recipe(tmp_path, recipe, env):
    suite = env.partition(":")[0]
    if suite in NEEDS:
        pytest.importorskip(NEEDS[suite])
    if recipe == "2024":  # no prefill: training starts when 2 x 8 windows of 8 + 1 steps fit, at step 24
        first_update, extra = 8 + 16, []
    else:  # training starts after a prefill of one full window
        first_update, extra = 8, ["--prefill", "8"]
    steps = first_update + 2
    args = ["train", "--recipe", recipe, "--env", env, "--train-ratio", "16", "--steps", str(steps),
            "--logdir", str(tmp_path), "--device", "cpu", *extra]
    for override in OVERRIDES[recipe]:
        args += ["--set", override]
    assert main(args) == 0
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert rows[-1]["step"] == steps and rows[-1]["perf/updates"] > 0
    loss = "loss/total" if recipe == "2024" else "loss/world_model"
    assert any(np.isfinite(row[loss]) for row in rows if loss in row)
