"""A damaged replay never ends a run: a chunk that cannot be used is moved to `replay/damaged/`
with one warning and the replay is filled from the others, the first step after a gap starts a
new stream, and a replay that lost what training needs (`replay/` deleted) is refilled by the
policy before training goes on. Every fault is made by hand in the files of a real run."""

import logging
import shutil

import numpy as np
import pytest

from dreamer import checkpoint
from dreamer.cli import main
from dreamer.logging import read_jsonl
from dreamer.replay import LATENTS_FILE, chunk_files
from tests.conftest import train_args
from tests.test_replay import fill, fill_2024, make, make_2024
from tests.test_v2024_agent import args_2024


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "dreamer" and r.levelno >= logging.WARNING]


def chunk_arrays(path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def random_bytes(path):
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def cut_in_half(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def emptied(path):
    path.write_bytes(b"")


def object_array(path):  # loading it would unpickle
    arrays = chunk_arrays(path)
    np.savez(path, **{**arrays, "image": arrays["image"].astype(object)})


def key_missing(path):
    np.savez(path, **{k: v for k, v in chunk_arrays(path).items() if k != "action"})


def wrong_shape(path):
    arrays = chunk_arrays(path)
    np.savez(path, **{**arrays, "image": np.zeros((len(arrays["reward"]), 8, 8, 3), np.uint8)})


DAMAGE = {random_bytes: "not an .npz archive", cut_in_half: "cut short", emptied: "an empty file",
          object_array: "Object arrays cannot be loaded", key_missing: "no 'action' array",
          wrong_shape: "'image' is uint8 (16, 8, 8, 3), the replay stores uint8 (steps, 4, 4, 3)"}


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__)
def test_an_unusable_chunk_is_set_aside_and_the_step_after_the_gap_starts_a_stream(tmp_path, caplog, damage):
    """One episode of 64 steps in chunks of 16; the second chunk (steps 16..31) is damaged."""
    replay = make(directory=tmp_path, chunk=16)
    fill(replay, 64, episode_length=1000)
    damaged = tmp_path / "env0-00000032.npz"
    damage(damaged)
    restored = make(directory=tmp_path)
    assert restored.load([64]) == 48
    [message] = warnings(caplog)
    assert message.startswith(f"replay file {damaged} cannot be used (") and DAMAGE[damage] in message
    assert message.endswith(f"; moved to {tmp_path / 'damaged' / damaged.name}; the run goes on without it")
    assert not damaged.exists() and (tmp_path / "damaged" / damaged.name).is_file()
    ids = restored.data["vector"][0, :48, 0].astype(int)
    assert ids.tolist() == [*range(16), *range(32, 64)]
    assert np.flatnonzero(restored.data["is_first"][0, :48]).tolist() == [0, 16]  # the episode's start, the gap
    windows = restored.sample(batch=500)
    crossing = (windows["vector"][:, 0, 0] < 16) & (windows["vector"][:, -1, 0] >= 32)
    assert crossing.any() and windows["is_first"][crossing].sum(1).min() == 2  # step 0 and the step after the gap
    assert int(restored.written[0]) == 64
    # the gap stays marked in later runs: it is seen in the chunks' steps, and the set-aside
    # file is never overwritten by a second one of its name
    (tmp_path / "env0-00000032.npz").write_bytes(b"")
    again = make(directory=tmp_path)
    assert again.load([64]) == 48 and again.data["is_first"][0, 16]
    assert sorted(p.name for p in (tmp_path / "damaged").iterdir()) == ["env0-00000032.1.npz", "env0-00000032.npz"]


def test_a_chunk_damaged_past_its_first_array_leaves_none_of_its_steps_and_older_ones_fill_the_ring(tmp_path, caplog):
    """A ring of 32 holds the newest two chunks of 16. The newest one's last array is of the wrong
    kind: its rewards count its steps, reading all of it finds the fault; the ring is filled
    again from the two chunks before it, and the next step added starts a new stream."""
    replay = make(directory=tmp_path, chunk=16)
    fill(replay, 64, episode_length=1000)
    newest = tmp_path / "env0-00000064.npz"
    np.savez(newest, **{**chunk_arrays(newest), "action": np.zeros((16, 3), np.float64)})
    small = make(capacity=32, directory=tmp_path)
    assert small.load([64]) == 32
    assert len(warnings(caplog)) == 1 and "'action' is float64" in warnings(caplog)[0]
    assert small.data["vector"][0, :, 0].astype(int).tolist() == list(range(16, 48))
    assert small.sample(batch=200)["vector"].max() == 47
    assert int(small.written[0]) == 64  # chunks written from here on are named after every earlier one
    fill(small, 1, start=64, episode_length=1000)
    assert small.data["is_first"][0, small.ring_index(0, 64)]  # after the lost steps 48..63


def test_damaged_stored_latents_are_set_aside_and_the_chunks_latents_stand(tmp_path, caplog):
    """latents.npz holds 7.0 for every step; the chunks hold [id, -id]. Good, it gives every step
    after the last gap its saved values; cut, the chunks' values stand for all."""
    replay = make_2024(directory=tmp_path, chunk=8)
    fill_2024(replay, 40)
    replay.data["latent"][:] = 7.0
    replay.flush()
    latents = tmp_path / LATENTS_FILE
    saved = latents.read_bytes()
    emptied(tmp_path / "env0-00000016.npz")  # steps 8..15
    restored = make_2024(directory=tmp_path)
    assert restored.load([40]) == 32 and len(warnings(caplog)) == 1
    index = restored.ring_index(0, np.arange(8, 40))
    assert (restored.data["latent"][0, index[8:]] == 7.0).all()  # steps 16..39: after the gap, from the file
    assert restored.data["latent"][0, index[:8], 0].tolist() == list(range(8))  # steps 0..7: their chunk's
    caplog.clear()
    latents.write_bytes(saved[: len(saved) // 2])
    cut = make_2024(directory=tmp_path)
    assert cut.load([40]) == 32
    assert warnings(caplog) == [f"replay file {latents} cannot be used (an archive cut short or corrupted, BadZipFile: "
                                f"File is not a zip file); moved to {tmp_path / 'damaged' / LATENTS_FILE}; the run "
                                f"goes on without it"]
    ids = cut.data["vector"][0, :32, 0]
    np.testing.assert_array_equal(cut.data["latent"][0, :32], np.stack([ids, -ids], 1))


# -- real runs ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_100(tmp_path_factory):
    """A 2023 run of 100 steps (prefill 50, then one update per 4 steps), to be damaged in copies."""
    logdir = tmp_path_factory.mktemp("base") / "run"
    assert main(train_args(logdir, "gym:CartPole-v1", 100, "--train-ratio", "16")) == 0
    return logdir


@pytest.mark.parametrize("damage", [random_bytes, cut_in_half, emptied], ids=lambda f: f.__name__)
def test_a_run_with_a_damaged_chunk_continues_on_the_others(trained_100, tmp_path, caplog, damage):
    logdir = tmp_path / "run"
    shutil.copytree(trained_100, logdir)
    chunks = chunk_files(logdir / "replay")[0]
    _, middle = chunks[len(chunks) // 2]
    damage(middle)
    assert main(train_args(logdir, "gym:CartPole-v1", 120, "--train-ratio", "16")) == 0
    found = warnings(caplog)
    assert len(found) == 1 and str(middle) in found[0] and DAMAGE[damage] in found[0], found
    assert (logdir / "replay" / "damaged" / middle.name).is_file()
    assert "steps it held at the checkpoint are lost" in caplog.text and "training pauses" not in caplog.text
    _, payload = checkpoint.load_latest(logdir / "checkpoints")
    assert payload["progress"]["step"] == 120 and payload["ratio"] == {"steps": 70, "updates": 17}


def test_a_run_whose_replay_was_deleted_refills_it_then_trains(trained_100, tmp_path, caplog):
    """Steps 101..150 are collected by the policy with no update owed; training goes on after."""
    logdir = tmp_path / "run"
    shutil.copytree(trained_100, logdir)
    shutil.rmtree(logdir / "replay")
    with caplog.at_level("INFO", logger="dreamer"):
        assert main(train_args(logdir, "gym:CartPole-v1", 170, "--train-ratio", "16")) == 0
    assert warnings(caplog) == [f"replay {logdir / 'replay'} is missing (the checkpoint's run had written 100 "
                                f"steps); the run goes on with an empty replay"]
    assert f"replay {logdir / 'replay'}: 100 of the 100 steps it held at the checkpoint are lost" in caplog.text
    assert "training pauses until step 150" in caplog.text and "training goes on at step 150" in caplog.text
    updates = {row["step"]: row["perf/updates"] for row in read_jsonl(logdir / "metrics.jsonl")}
    assert updates[100] == updates[150] == 12 and updates[170] == 17
    _, payload = checkpoint.load_latest(logdir / "checkpoints")
    assert payload["progress"]["step"] == 170 and payload["ratio"] == {"steps": 70, "updates": 17}
    assert payload["refill_until"] == 0 and payload["ranks"][0]["replay_stored"] == [70]


def test_a_2024_run_whose_replay_was_deleted_refills_its_minimum_windows(tmp_path, caplog):
    """The 2024 agent trains from 4 x 16 windows of 17 steps: 80 steps, collected again from step 90."""
    logdir = tmp_path / "run"
    assert main(args_2024(logdir, 90)) == 0  # trains from step 81: 10 steps, 5 updates
    shutil.rmtree(logdir / "replay")
    with caplog.at_level("INFO", logger="dreamer"):
        assert main(args_2024(logdir, 190)) == 0
    assert len(warnings(caplog)) == 1 and "training pauses until step 170" in caplog.text
    rows = read_jsonl(logdir / "metrics.jsonl")
    assert {row["perf/updates"] for row in rows if 90 <= row["step"] <= 170} == {5}
    _, payload = checkpoint.load_latest(logdir / "checkpoints")
    assert payload["ratio"] == {"steps": 30, "updates": 15}
