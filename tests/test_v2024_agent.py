"""The 2024 recipe as a switch: its config, its agent in the training loop (stored latents written
back, training from batch_size x batch_length windows without prefill), exact resume, and the
refusal of a checkpoint of the other recipe."""

import numpy as np
import pytest

from dreamer import checkpoint
from dreamer.cli import main
from dreamer.config import ConfigError, from_yaml, load_config, to_yaml
from dreamer.logging import read_jsonl
from dreamer.train import Trainer
from tests import kill_harness
from tests.conftest import TINY_2024, train_args

FAST_2024 = [*TINY_2024, "replay.batch_size=4", "replay.batch_length=16", "run.log_every=25", "run.save_every=50",
             "replay.chunk=32", "run.train_ratio=32", "seed=3"]


def args_2024(logdir, steps):
    args = ["train", "--env", "gym:CartPole-v1", "--steps", str(steps), "--logdir", str(logdir), "--device", "cpu"]
    for override in FAST_2024:
        args += ["--set", override]
    return args


def test_the_2024_config_layers_its_overlays_and_presets():
    cfg = load_config([], {"env": "gym:CartPole-v1", "recipe": "2024"})
    assert cfg.size == "size1m" and cfg.run.prefill == 0 and cfg.replay.capacity == 5_000_000
    assert (cfg.v2024.dims.units, cfg.v2024.dims.deter, cfg.v2024.dims.classes) == (64, 512, 4)
    assert cfg.v2024.optim.lr == 4e-5 and cfg.v2024.repval_scale == 0.3
    crafter = load_config([], {"env": "crafter", "recipe": "2024"})
    assert crafter.size == "size200m" and crafter.run.train_ratio == 512
    atari = load_config([], {"env": "atari:Pong", "recipe": "2024"})
    assert (atari.run.train_ratio, atari.run.envs, atari.environment.noops) == (32, 16, 30)
    assert load_config([], {"env": "gym:CartPole-v1"}).recipe == "2023"


def test_saved_yaml_holds_only_the_recipes_own_sections_and_reads_back():
    for recipe in ("2023", "2024"):
        cfg = load_config([], {"env": "gym:CartPole-v1", "recipe": recipe})
        text = to_yaml(cfg)
        assert ("v2024:" in text) == (recipe == "2024") and ("rssm:" in text) == (recipe == "2023")
        assert from_yaml(text) == cfg


@pytest.mark.parametrize("recipe, key, message", [
    ("2024", "rssm.deter=64", "config key 'rssm' belongs to recipe 2023, but this run uses recipe 2024"),
    ("2023", "v2024.entropy=0.1", "config key 'v2024' belongs to recipe 2024, but this run uses recipe 2023"),
    ("2024", "run.prefill=100", "accepted: prefill 0 under recipe 2024"),
    ("2024", "v2024.actor_min_std=2", "accepted: actor_min_std < actor_max_std"),
])
def test_keys_of_the_other_recipe_and_broken_2024_values_are_refused(recipe, key, message):
    with pytest.raises(ConfigError, match=message):
        load_config([key], {"env": "gym:CartPole-v1", "recipe": recipe})


def test_training_starts_at_a_full_batch_of_windows_and_writes_latents_back(tmp_path):
    cfg = load_config([*FAST_2024, f"logdir={tmp_path}", "run.steps=100", "device=cpu", "env=gym:CartPole-v1"])
    trainer = Trainer(cfg)
    try:
        while trainer.replay.items() < 4 * 16:
            trainer.iterate()
            assert trainer.ratio.updates == 0
        assert trainer.progress.step == 4 * 16 + 16  # windows of 16 + 1 steps, one env, no prefill
        policy_latents = trainer.replay.data["deter"][0, :trainer.progress.step].copy()
        while trainer.ratio.updates == 0:
            trainer.iterate()
        trainer.replay.settle()
        if trainer.write_backs:  # the next iteration pays for no update: the latents wait on their way
            assert len(trainer.replay.pending) == len(trainer.write_backs)
            trainer.apply_write_backs()  # what the next draw (or a save) does first
        else:  # it does: its batch, drawn in the background, took them first and awaits its own
            assert len(trainer.replay.pending) == 1
            trainer.replay.pending.popleft()
        assert not trainer.replay.pending and not trainer.write_backs
        changed = (trainer.replay.data["deter"][0, :len(policy_latents)] != policy_latents).any(-1)
        assert 0 < changed.sum() <= 4 * 16  # the trained steps of the batch's windows, not their context steps
    finally:
        trainer.driver.close()
        trainer.logger.close()


def test_stopped_and_continued_2024_run_equals_the_uninterrupted_one(tmp_path):
    assert main(args_2024(tmp_path / "reference", 175)) == 0
    assert main(args_2024(tmp_path / "continued", 100)) == 0  # training starts at step 81
    assert main(args_2024(tmp_path / "continued", 175)) == 0
    kill_harness.compare_runs(tmp_path / "reference", tmp_path / "continued")
    rows = read_jsonl(tmp_path / "reference" / "metrics.jsonl")
    assert rows[-1]["perf/updates"] == 47 and np.isfinite(rows[-1]["loss/total"])  # steps 81..175 at 32 / 64 per step
    _, payload = checkpoint.load_latest(tmp_path / "reference" / "checkpoints")
    assert list(payload["optimizers"]) == ["all"] and "recipe: '2024'" in payload["config"]
    # the shared commands read a 2024 run: open-loop predictions and evaluation
    out = tmp_path / "imagine.png"
    assert main(["imagine", "--checkpoint", str(tmp_path / "reference"), "--out", str(out), "--context", "3",
                 "--horizon", "5", "--episodes", "2", "--device", "cpu"]) == 0
    assert out.stat().st_size > 0
    assert main(["eval", "--checkpoint", str(tmp_path / "reference"), "--episodes", "1", "--device", "cpu"]) == 0


def test_a_checkpoint_of_the_other_recipe_is_refused(tmp_path, capsys):
    assert main(train_args(tmp_path, "gym:CartPole-v1", 60)) == 0
    assert main(args_2024(tmp_path, 120)) == 2
    err = capsys.readouterr().err
    assert "recipe: the run has '2023', this command gives '2024'" in err
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path / "checkpoints")][-1] == "ckpt-0000000060.pt"
