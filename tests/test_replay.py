"""Replay windows, FIFO capacity, persistence, and the train-ratio counter."""

import math
from fractions import Fraction

import gymnasium as gym
import numpy as np
import pytest

from dreamer.config import load_config
from dreamer.replay import Replay, TrainRatio
from tests.conftest import FLAGS


def spaces():
    obs = gym.spaces.Dict({
        "image": gym.spaces.Box(0, 255, (4, 4, 3), np.uint8),
        "vector": gym.spaces.Box(-np.inf, np.inf, (1,), np.float32),  # holds the global step id
        "log_achievement_x": gym.spaces.Box(0, 10, (), np.int32),
        "reward": gym.spaces.Box(-np.inf, np.inf, (), np.float32),
        "is_first": FLAGS, "is_last": FLAGS, "is_terminal": FLAGS,
    })
    return obs, gym.spaces.Discrete(3)


def make(capacity=1000, envs=1, length=8, batch=16, directory=None, chunk=1024, storage="memory"):
    cfg = load_config([f"replay.capacity={capacity}", f"replay.batch_length={length}", f"replay.storage={storage}",
                       f"replay.batch_size={batch}", f"replay.chunk={chunk}", f"run.envs={envs}"], {"env": "crafter"})
    return Replay(cfg.replay, *spaces(), envs=envs, directory=directory, seed=0)


def fill(replay, steps, episode_length=10, start=0):
    """Env e's step i carries id e * 1e6 + i; an episode starts every `episode_length` steps."""
    envs = replay.envs
    for i in range(start, start + steps):
        ids = np.arange(envs) * 1_000_000 + i
        replay.add({
            "image": np.full((envs, 4, 4, 3), i % 256, np.uint8), "vector": ids[:, None].astype(np.float32),
            "reward": np.ones(envs, np.float32), "is_first": np.full(envs, i % episode_length == 0),
            "is_last": np.full(envs, i % episode_length == episode_length - 1),
            "is_terminal": np.zeros(envs, bool), "action": np.eye(3, dtype=np.float32)[np.full(envs, i % 3)],
        })


def test_a_prefetched_batch_comes_from_the_replay_before_the_next_add_and_a_checkpoint_redraws_it():
    replay = make(length=8, batch=64)
    fill(replay, 20)  # steps 0..19: the last window starts at 12
    before = []
    replay.prefetch(lambda batch: batch, before=lambda: before.append(len(replay)))
    pre_draw = replay.state_dict()
    fill(replay, 30, start=20)  # waits for the draw, then adds steps 20..49
    assert replay.state_dict() == pre_draw  # until the batch is taken, a checkpoint saves the state before it
    batch = next(replay.batches(1))
    assert before == [20]  # `before` ran in the draw, ahead of the sample
    firsts = batch["vector"][:, 0, 0]
    assert firsts.max() <= 12 and len(set(firsts.tolist())) > 5  # uniform over the 13 starts of steps 0..19
    assert replay.state_dict() != pre_draw  # taken: the live state from here on
    continued = make(length=8, batch=64)
    fill(continued, 20)
    continued.load_state_dict(pre_draw)
    continued.prefetch(lambda batch: batch)  # a continued run plans again and draws at once
    np.testing.assert_array_equal(next(continued.batches(1))["vector"], batch["vector"])


def test_a_failed_draw_raises_where_its_batch_is_taken():
    replay = make()
    fill(replay, 20)
    replay.prefetch(lambda batch: 1 / 0)
    fill(replay, 1, start=20)  # the add waits for the draw and goes on
    with pytest.raises(ZeroDivisionError):
        next(replay.batches(1))


def test_sample_shapes_and_dtypes():
    replay = make()
    fill(replay, 100)
    batch = replay.sample()
    assert batch["image"].shape == (16, 8, 4, 4, 3) and batch["image"].dtype == np.uint8
    assert batch["action"].shape == (16, 8, 3) and batch["reward"].shape == (16, 8)
    assert "log_achievement_x" not in batch  # statistics are not stored
    assert batch["is_first"][:, 0].all()


def test_prefetched_batches_are_the_sequential_samples():
    plain, prefetched = make(envs=2), make(envs=2)
    fill(plain, 200)
    fill(prefetched, 200)
    expected = [plain.sample() for _ in range(5)]
    got = list(prefetched.batches(5, prepare=lambda batch: {k: v * 1 for k, v in batch.items()}))
    assert len(got) == 5
    for want, have in zip(expected, got):
        assert want.keys() == have.keys()
        for key in want:
            np.testing.assert_array_equal(want[key], have[key])
    assert list(prefetched.batches(0)) == []
    np.testing.assert_array_equal(plain.sample()["vector"], prefetched.sample()["vector"])  # RNG in step
    np.testing.assert_array_equal(plain.sample()["vector"], next(prefetched.batches(1))["vector"])  # inline path


def test_windows_are_contiguous_within_one_env_and_cross_episode_boundaries():
    replay = make(capacity=3000, envs=3)
    fill(replay, 400)
    batch = replay.sample(batch=512)
    ids = batch["vector"][..., 0].astype(np.int64)
    assert np.all(np.diff(ids, axis=1) == 1)  # consecutive steps of one env's stream
    steps = ids % 1_000_000
    # a window that crosses an episode boundary marks the new episode's first step
    crossing = (steps[:, 1:] % 10) == 0
    assert crossing.any()
    assert np.array_equal(batch["is_first"][:, 1:], crossing)


def test_fifo_capacity_per_env():
    replay = make(capacity=100, envs=2)
    fill(replay, 130)
    assert len(replay) == 100
    ids = replay.sample(batch=2000)["vector"].astype(np.int64) % 1_000_000
    assert ids.min() == 80 and ids.max() == 129  # each env keeps its newest 50 steps
    assert np.all(np.diff(ids[..., 0], axis=1) == 1)  # no window wraps across the write head


def test_uniform_over_start_positions():
    replay = make(capacity=64, length=8)
    fill(replay, 100)  # full ring: 64 - 8 + 1 = 57 valid starts
    starts = replay.sample(batch=57_000)["vector"][:, 0, 0].astype(np.int64)
    counts = np.bincount(starts - starts.min())
    assert len(counts) == 57 and counts.min() > 800 and counts.max() < 1200  # 1000 expected each


def test_too_few_steps_to_sample():
    replay = make(length=8)
    fill(replay, 5)
    with pytest.raises(ValueError, match="fewer than one window of 8"):
        replay.sample()


def test_memory_is_the_raw_bytes_of_what_is_stored():
    replay = make(capacity=1000)
    fill(replay, 100)
    per_step = 4 * 4 * 3 + 4 + 4 + 3 + 3 * 4  # image, vector, reward, 3 flags, action
    assert replay.nbytes() == 100 * per_step


def test_chunks_persist_atomically_and_reload(tmp_path):
    replay = make(capacity=1000, envs=2, directory=tmp_path, chunk=32)
    fill(replay, 100)
    replay.flush()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files and not any(".tmp" in name for name in files)
    restored = make(capacity=1000, envs=2, directory=tmp_path)
    assert restored.load() == 200 and len(restored) == 200
    for key in replay.data:
        np.testing.assert_array_equal(restored.data[key][:, :100], replay.data[key][:, :100])
    # a reloaded replay keeps writing after what it loaded
    fill(restored, 5, start=100)
    assert restored.data["vector"][0, 104, 0] == 104


def test_each_finished_episode_is_on_disk_at_once(tmp_path):
    """Episodes of 10 steps end at steps 10 and 20; a 1,000-step chunk limit never triggers."""
    replay = make(directory=tmp_path)
    fill(replay, 25)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env0-00000010.npz", "env0-00000020.npz"]
    with np.load(tmp_path / "env0-00000020.npz") as data:
        np.testing.assert_array_equal(data["vector"][:, 0], np.arange(10, 20))
        assert data["is_first"][0] and data["is_last"][-1]
    long = make(directory=tmp_path / "long", chunk=8)  # an episode longer than a chunk goes in pieces
    fill(long, 20, episode_length=100)
    assert sorted(p.name for p in (tmp_path / "long").iterdir()) == ["env0-00000008.npz", "env0-00000016.npz"]


def test_reload_into_smaller_capacity_keeps_the_newest(tmp_path):
    replay = make(capacity=1000, directory=tmp_path, chunk=16)
    fill(replay, 200)
    replay.flush()
    small = make(capacity=50, directory=tmp_path)
    small.load()
    ids = small.sample(batch=500)["vector"].astype(np.int64)
    assert len(small) == 50 and ids.min() == 150 and ids.max() == 199


@pytest.mark.parametrize("ratio", [512, 64, 1024, 0.3, 1000 / 3])
def test_train_ratio_counter_is_exact_over_a_long_run(ratio):
    counter = TrainRatio(ratio, 1024)
    rng = np.random.default_rng(0)
    total_due = 0
    for _ in range(20_000):
        total_due += counter(int(rng.integers(1, 17)))  # steps from 1..16 envs per iteration
    exact = Fraction(ratio).limit_denominator(10**6)
    assert total_due == counter.updates == math.floor(counter.steps * exact / 1024)
    assert abs(counter.achieved() - float(exact)) <= 1024 / counter.steps  # off by less than one update


def test_train_ratio_schedule_and_state():
    counter = TrainRatio(512, 1024)  # one update every 2 steps
    assert [counter(1) for _ in range(6)] == [0, 1, 0, 1, 0, 1]
    restored = TrainRatio(512, 1024)
    restored.load_state_dict(counter.state_dict())
    assert [restored(1) for _ in range(2)] == [0, 1]
    big = TrainRatio(4096, 1024)  # four updates per step
    assert big(3) == 12


def test_disk_storage_is_memory_mapped_and_samples_like_memory(tmp_path):
    in_memory, on_disk = make(envs=2), make(envs=2, directory=tmp_path, storage="disk")
    fill(in_memory, 300)
    fill(on_disk, 300)
    assert isinstance(on_disk.data["image"], np.memmap)
    assert (tmp_path / "storage" / "image.npy").stat().st_size >= on_disk.data["image"].nbytes
    for want, got in zip([in_memory.sample() for _ in range(3)], [on_disk.sample() for _ in range(3)]):
        for key in want:
            np.testing.assert_array_equal(want[key], got[key])


def test_replay_larger_than_memory_is_refused_with_the_numbers(monkeypatch, tmp_path):
    from dreamer import replay as replay_module
    from dreamer.config import ConfigError

    replay = make(capacity=1000)
    per_step = 4 * 4 * 3 + 4 + 4 + 3 + 3 * 4  # image, vector, reward, 3 flags, one-hot action
    assert replay.step_bytes == per_step
    monkeypatch.setattr(replay_module, "available_memory", lambda: 500 * per_step)
    replay.check_fits(steps=400)  # a run of 400 steps never holds more
    with pytest.raises(ConfigError, match=rf"replay of 1,000 steps x {per_step} bytes per step .* replay.storage=disk"):
        replay.check_fits(steps=10_000)
    make(capacity=1000, directory=tmp_path, storage="disk").check_fits(steps=10_000)  # on disk: allowed


# -- the 2024 recipe's additions: stored latents, a context step, write-back, the online queue ----

STORED = {"latent": ((2,), np.dtype(np.float32))}


def make_2024(capacity=1000, envs=1, length=8, batch=4, directory=None, chunk=1024):
    cfg = load_config([f"replay.capacity={capacity}", f"replay.batch_length={length}", f"replay.batch_size={batch}",
                       f"replay.chunk={chunk}", f"run.envs={envs}"], {"env": "crafter"})
    return Replay(cfg.replay, *spaces(), envs=envs, directory=directory, seed=0, stored=STORED, context=1, online=True)


def fill_2024(replay, steps, start=0):
    """As `fill`, with the stored latent [id, -id] (the policy's value) beside every step."""
    for i in range(start, start + steps):
        ids = (np.arange(replay.envs) * 1_000_000 + i).astype(np.float32)
        replay.add({
            "image": np.zeros((replay.envs, 4, 4, 3), np.uint8), "vector": ids[:, None], "reward": np.ones(replay.envs),
            "is_first": np.full(replay.envs, i == 0), "is_last": np.zeros(replay.envs, bool),
            "is_terminal": np.zeros(replay.envs, bool), "action": np.zeros((replay.envs, 3), np.float32),
            "latent": np.stack([ids, -ids], 1),
        })


def test_windows_carry_the_context_step_and_count_as_items_from_there():
    replay = make_2024(length=8)
    fill_2024(replay, 20)
    assert replay.items() == 20 - 9 + 1  # windows of 8 + 1 steps
    ids = replay.sample(rng=np.random.default_rng(0))["vector"][..., 0]
    assert ids.shape == (4, 9) and (np.diff(ids, axis=1) == 1).all()


def test_the_online_queue_gives_consecutive_windows_first_then_uniform_ones():
    replay = make_2024(length=8, batch=4)
    fill_2024(replay, 27)  # windows of 9 end at steps 8, 17, 26: three queued
    assert list(replay.queue) == [(0, 0), (0, 9), (0, 18)]
    first = replay.sample()["vector"][:, 0, 0]
    assert first[:3].tolist() == [0, 9, 18] and not replay.queue
    replay.load_state_dict({**replay.state_dict(), "queue": [[0, 9]]})
    assert replay.sample()["vector"][0, 0, 0] == 9
    assert replay.state_dict()["queue"] == []


def test_write_back_overwrites_the_trained_steps_of_the_window_one_batch_late():
    replay = make_2024(length=8, batch=1)
    fill_2024(replay, 30)
    replay.queue.clear()
    starts = [int(replay.sample()["vector"][0, 0, 0]) for _ in range(2)]  # two batches await write-back
    values = np.arange(8 * 2, dtype=np.float32).reshape(1, 8, 2) + 1000  # (B, T, 2) for steps 1..8
    replay.write_back({"latent": values})  # the first batch's
    assert len(replay.pending) == 1
    latent = replay.data["latent"][0]
    assert latent[starts[0]].tolist() == [starts[0], -starts[0]]  # the context step keeps its latent
    np.testing.assert_array_equal(latent[starts[0] + 1: starts[0] + 9], values[0])
    untouched = [i for i in range(30) if not starts[0] < i <= starts[0] + 8]
    assert all(latent[i].tolist() == [i, -i] for i in untouched)


def test_write_back_to_an_evicted_step_is_dropped():
    replay = make_2024(capacity=12, length=8, batch=1)
    fill_2024(replay, 12)
    replay.queue.clear()
    start = int(replay.sample()["vector"][0, 0, 0])
    fill_2024(replay, 6, start=12)  # the ring moves on by 6: steps 0..5 are gone
    replay.write_back({"latent": np.full((1, 8, 2), 7.0, np.float32)})
    for slot, step in enumerate(replay.data["vector"][0, :, 0].astype(int)):  # steps 6..17 in the ring
        written = start < step <= start + 8
        want = [7.0, 7.0] if written else [step, -step]  # the slots of evicted steps hold new steps, untouched
        assert replay.data["latent"][0, slot].tolist() == want, step


def test_stored_values_written_back_survive_a_flush_and_load(tmp_path):
    replay = make_2024(length=8, batch=2, directory=tmp_path)
    fill_2024(replay, 40)
    replay.sample()
    replay.write_back({"latent": np.full((2, 8, 2), 5.0, np.float32)})
    replay.flush()
    again = make_2024(length=8, batch=2, directory=tmp_path)
    again.load(replay.written.tolist())
    np.testing.assert_array_equal(again.data["latent"][:, :40], replay.data["latent"][:, :40])
    assert (again.data["latent"] == 5.0).any()
    # values from a later flush than the checkpoint being continued are not used: the chunks' stand
    replay.sample()
    replay.write_back({"latent": np.full((2, 8, 2), 9.0, np.float32)})
    fill_2024(replay, 10, start=40)
    replay.flush()
    older = make_2024(length=8, batch=2, directory=tmp_path)
    older.load([40])
    np.testing.assert_array_equal(older.data["latent"][:, :40], again.data["latent"][:, :40])
