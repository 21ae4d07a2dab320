"""`dreamer imagine`: open-loop pictures and numbers from a checkpoint of a tiny trained agent."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dreamer import render
from dreamer.cli import main
from tests.conftest import train_args

CONTEXT, HORIZON, SEQUENCES, SCALE = 3, 9, 2, 2
VIDEO = ["--set", "environment.length=40", "--set", "run.video_every=100", "--set", "imagine.context=2",
         "--set", "imagine.horizon=5", "--set", "imagine.sequences=2", "--set", f"imagine.scale={SCALE}"]


@pytest.fixture(scope="module")
def crafter_run(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("imagine") / "crafter"
    assert main(train_args(logdir, "crafter", 160, *VIDEO)) == 0
    return logdir


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("imagine") / "cartpole"
    assert main(train_args(logdir, "gym:CartPole-v1", 120, "--set", "run.video_every=100",
                           "--set", "imagine.horizon=4")) == 0
    return logdir


def imagine_args(logdir, out, *extra):
    return ["imagine", "--checkpoint", str(logdir), "--out", str(out), "--context", str(CONTEXT),
            "--horizon", str(HORIZON), "--episodes", str(SEQUENCES), "--device", "cpu", *extra]


def grid_size(sequences: int) -> tuple[int, int]:
    """(height, width) of one frame grid, from the layout constants."""
    cell_w = 64 * SCALE + 2 * render.BORDER
    cell_h = 64 * SCALE + 2 * render.BORDER + render.TEXT_HEIGHT
    return render.TEXT_HEIGHT + 2 + 3 * cell_h, render.LABEL_WIDTH + sequences * cell_w


@pytest.mark.parametrize("ext", ["gif", "mp4"])
def test_animations_have_one_frame_per_step(crafter_run, tmp_path, ext):
    out = tmp_path / f"imagine.{ext}"
    assert main(imagine_args(crafter_run, out)) == 0
    frames = iio.imread(out)
    height, width = grid_size(SEQUENCES)
    assert frames.shape == (CONTEXT + HORIZON, height + (-height % 16), width + (-width % 16), 3)


def test_contact_sheet_and_json(crafter_run, tmp_path, capsys):
    out = tmp_path / "sheet.png"
    assert main(imagine_args(crafter_run, out, "--json")) == 0
    cell_w = 64 * SCALE + 2 * render.BORDER
    cell_h = 64 * SCALE + 2 * render.BORDER + render.TEXT_HEIGHT
    sheet = (render.TEXT_HEIGHT + 2 + 3 * SEQUENCES * cell_h, render.LABEL_WIDTH + (CONTEXT + HORIZON) * cell_w, 3)
    assert iio.imread(out).shape == sheet
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["steps"] == CONTEXT + HORIZON and info["sequences"] == SEQUENCES
    assert len(info["mse_per_step"]) == CONTEXT + HORIZON and all(v >= 0 for v in info["mse_per_step"])
    assert np.allclose(np.mean(info["mse"], axis=0), info["mse_per_step"], atol=1e-5)
    assert len(info["reward_pred"][0]) == len(info["reward_real"][0]) == CONTEXT + HORIZON
    assert "per-step prediction error" in capsys.readouterr().out


def test_policy_actions_have_no_truth_after_the_context(crafter_run, tmp_path):
    out = tmp_path / "policy.gif"
    assert main(imagine_args(crafter_run, out, "--actions", "policy", "--source", "fresh", "--json")) == 0
    info = json.loads(out.with_suffix(".json").read_text())
    assert all(v is not None for v in info["mse_per_step"][:CONTEXT])
    assert all(v is None for v in info["mse_per_step"][CONTEXT:])
    assert iio.imread(out).shape[0] == CONTEXT + HORIZON


def test_error_row_is_zero_where_truth_equals_prediction():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 256, (2, 4, 64, 64, 3), dtype=np.uint8)
    pred = truth.astype(np.float32) / 255.0
    pred[1] = rng.random((4, 64, 64, 3))  # the second sequence is predicted wrongly
    result = {"context": 2, "actions": "replay", "truth_image": truth, "pred_image": pred,
              "has_truth": np.ones((2, 4), bool), "pred_reward": np.zeros((2, 4)), "pred_cont": np.ones((2, 4))}
    grid = np.asarray(render.frame_grid(result, 3, scale=1))
    cell_w, cell_h = 64 + 2 * render.BORDER, 64 + 2 * render.BORDER + render.TEXT_HEIGHT
    top = render.TEXT_HEIGHT + 2 + 2 * cell_h + render.BORDER  # the error row's first pixel row
    left = render.LABEL_WIDTH + render.BORDER
    exact = grid[top:top + 64, left:left + 64]
    wrong = grid[top:top + 64, left + cell_w:left + cell_w + 64]
    assert exact.max() == 0 and wrong.mean() > 40
    # and the truth and model rows show the frames themselves
    first = render.TEXT_HEIGHT + 2 + render.BORDER
    assert np.array_equal(grid[first:first + 64, left:left + 64], truth[0, 3])


def test_vector_env_writes_a_plot(cartpole_run, tmp_path):
    out = tmp_path / "plot.png"
    assert main(imagine_args(cartpole_run, out, "--json")) == 0
    assert iio.imread(out).ndim == 3
    info = json.loads(out.with_suffix(".json").read_text())
    assert len(info["mse_per_step"]) == CONTEXT + HORIZON


@pytest.mark.parametrize(
    "case, message",
    [
        ("gif-for-vectors", "has no image observations, so there are no frames for .gif"),
        ("horizon-too-long", "but the longest stored episode segment has"),
        ("missing", "does not exist"),
        ("bad-extension", "unknown output type '.jpg'"),
        ("context-0", "--context, --horizon and --episodes must be >= 1, got 0, 9, 2"),
        ("horizon-0", "--context, --horizon and --episodes must be >= 1, got 3, 0, 2"),
        ("empty-replay-dir", "no saved episodes in"),
    ],
)
def test_clear_errors(case, message, crafter_run, cartpole_run, tmp_path, capsys):
    args = {
        "gif-for-vectors": imagine_args(cartpole_run, tmp_path / "x.gif"),
        "horizon-too-long": imagine_args(crafter_run, tmp_path / "x.gif") + ["--horizon", "500"],
        "missing": imagine_args(tmp_path / "nothing", tmp_path / "x.gif"),
        "bad-extension": imagine_args(crafter_run, tmp_path / "x.jpg"),
        "context-0": imagine_args(crafter_run, tmp_path / "x.gif") + ["--context", "0"],
        "horizon-0": imagine_args(crafter_run, tmp_path / "x.gif") + ["--horizon", "0"],
        "empty-replay-dir": imagine_args(crafter_run, tmp_path / "x.gif") + ["--replay-dir", str(tmp_path)],
    }[case]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_replay_dir_is_read_from_the_flag_or_the_runs_config(tmp_path):
    """A run that kept its replay outside the logdir: `imagine` finds it through the saved config,
    and `--replay-dir` points elsewhere."""
    logdir, replay = tmp_path / "run", tmp_path / "elsewhere"
    assert main(train_args(logdir, "gym:CartPole-v1", 120, "--replay-dir", str(replay))) == 0
    assert not (logdir / "replay").exists() and list(replay.glob("*.npz"))
    assert main(imagine_args(logdir, tmp_path / "a.png")) == 0
    moved = tmp_path / "moved"
    replay.rename(moved)
    assert main(imagine_args(logdir, tmp_path / "b.png")) == 2
    assert main(imagine_args(logdir, tmp_path / "b.png", "--replay-dir", str(moved))) == 0


def test_training_writes_open_loop_videos_to_tensorboard(crafter_run, cartpole_run):
    for logdir in (crafter_run, cartpole_run):
        events = EventAccumulator(str(logdir), size_guidance={"images": 0})
        events.Reload()
        assert "imagine/open_loop" in events.Tags()["images"]


def test_json_goes_where_the_help_says(tmp_path, monkeypatch, capsys):
    """The help names the file `--json` writes, and an untrained agent playing fresh CartPole
    episodes writes exactly that file."""
    import torch

    from dreamer import evaluate
    from dreamer.envs import spaces
    from dreamer.recipes import build_agent
    from tests.conftest import tiny_config

    with pytest.raises(SystemExit):
        main(["imagine", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--json also write per-step errors and rewards as JSON to the file named as OUT with its suffix " \
           "replaced by .json (im.png -> im.json)" in help_text
    cfg = tiny_config(env="gym:CartPole-v1")
    agent = build_agent(cfg, *spaces(cfg.env, cfg.environment), torch.device("cpu"))
    monkeypatch.setattr(evaluate, "load_agent", lambda path, device: (agent, cfg, {}))
    out = tmp_path / "im.png"
    assert main(["imagine", "--checkpoint", "untrained", "--out", str(out), "--source", "fresh", "--context", "1",
                 "--horizon", "2", "--episodes", "1", "--device", "cpu", "--json"]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["im.json", "im.png"]
    printed = capsys.readouterr().out
    assert f"wrote {out} and {tmp_path / 'im.json'}" in printed
    assert "(MSE, mean over 1 sequence; the first 1 step is context)" in printed
