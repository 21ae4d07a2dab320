"""Exact resume: the saved envs continue their episodes, and a run killed with SIGKILL at random
moments (checkpoint and log writes included) and continued each time ends as the run that was
never interrupted: same metrics at the same steps, same episodes, same weights and optimiser state."""

import random

import numpy as np
import pytest

from dreamer.config import load_config
from dreamer.envs import make_vector
from dreamer.envs.driver import Driver, random_policy
from tests import kill_harness


def _roll(driver: Driver, policy, steps: int) -> tuple[list[dict], list[dict]]:
    observations, episodes = [], []
    for _ in range(steps):
        episodes += driver.step(policy)
        observations.append({k: v.copy() for k, v in driver.obs.items()})
    return observations, episodes


@pytest.mark.parametrize("env", ["gym:CartPole-v1", "crafter", "atari:Pong"])
def test_restored_driver_continues_the_same_episodes(env):
    """Step 30 times, save, step 60 more; a driver on fresh envs loading the saved state and fed
    the same actions sees the same 60 observations and finishes the same episodes. (Atari without
    sticky actions, as in Atari100k: the emulator's saved state leaves out the previous action that
    a sticky action repeats.)"""
    pytest.importorskip({"gym:CartPole-v1": "gymnasium", "crafter": "crafter", "atari:Pong": "ale_py"}[env])
    cfg = load_config(["environment.length=20", "environment.sticky=0"], {"env": env}).environment
    first = Driver(make_vector(env, cfg, 1, seed=5), seed=5, on_step=lambda step: None)
    act_space = first.envs.single_action_space
    _roll(first, random_policy(act_space, 1, np.random.default_rng(0)), 30)
    state = first.state_dict()
    want = _roll(first, random_policy(act_space, 1, np.random.default_rng(1)), 60)

    second = Driver(make_vector(env, cfg, 1, seed=99), seed=99, on_step=lambda step: None)
    assert second.load_state_dict(state)
    got = _roll(second, random_policy(act_space, 1, np.random.default_rng(1)), 60)
    assert got[1] == want[1] and len(want[1]) >= 2  # episodes of 20 steps end inside the window
    for a, b in zip(got[0], want[0]):
        assert all(np.array_equal(a[k], b[k]) for k in b)
    first.close()
    second.close()


def test_envs_in_subprocesses_start_new_episodes_on_resume():
    cfg = load_config([], {"env": "gym:CartPole-v1"}).environment
    driver = Driver(make_vector("gym:CartPole-v1", cfg, 2, seed=0), seed=0, on_step=lambda step: None)
    state = driver.state_dict()
    assert state["envs"] is None and not driver.load_state_dict(state)
    driver.close()


def test_killed_anywhere_and_resumed_equals_the_uninterrupted_run(tmp_path):
    """SIGKILL in turn: at a random time, at the n-th rename of a temp file (checkpoint, replay
    chunk, config, log rewrite), half-way through a log line, and a timer kill after which the
    newest checkpoint is cut in half; then one attempt without a fault finishes the run."""
    seconds = kill_harness.reference_run(tmp_path / "reference", 200)
    report = kill_harness.run_with_kills(tmp_path / "killed", 200, random.Random(0), seconds, max_kills=4)
    assert report.total >= 2, report.attempts  # file-write faults fire early in every attempt
    kill_harness.compare_runs(tmp_path / "reference", tmp_path / "killed")


def test_parallel_env_run_resumes_with_no_step_lost_or_repeated(tmp_path):
    """Envs in subprocesses cannot be saved: the continued run starts new episodes, and its step
    counter, train ratio, replay and logs go on from the checkpoint."""
    from dreamer import checkpoint
    from dreamer.cli import main
    from dreamer.logging import read_jsonl
    from tests.conftest import train_args

    logdir = tmp_path / "run"
    assert main(train_args(logdir, "gym:CartPole-v1", 100, "--envs", "2")) == 0
    assert main(train_args(logdir, "gym:CartPole-v1", 200, "--envs", "2")) == 0
    payload = checkpoint.load_latest(logdir / "checkpoints")[1]
    assert payload["progress"]["step"] == 200 and payload["ranks"][0]["replay_written"] == [100, 100]
    assert payload["ratio"] == {"steps": 150, "updates": 150}  # 150 steps after the prefill, 64 per update
    steps = [r["step"] for r in read_jsonl(logdir / "metrics.jsonl")]
    assert steps == [50, 100, 150, 200]
