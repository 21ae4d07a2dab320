"""`dreamer eval`: its --out checked before anything is played, and --seed making it repeatable."""

import json
import os

import pytest
import torch

from dreamer.cli import main
from tests.conftest import tiny_config


@pytest.mark.parametrize("where, message", [
    (lambda tmp: tmp, "is a folder; accepted: a .json file path"),
    (lambda tmp: tmp / "eval.txt", "does not end in .json; accepted: a .json file path"),
    (lambda tmp: tmp / "missing" / "eval.json", "missing does not exist; accepted: a .json file in an existing folder"),
    (lambda tmp: tmp / "file" / "eval.json", "file is not a folder; accepted: a .json file in an existing folder"),
])
def test_an_unusable_out_is_refused_before_the_checkpoint_is_read(where, message, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    out = where(tmp_path)
    # the checkpoint does not exist either: the error about --out comes first, so nothing was loaded
    status = main(["eval", "--checkpoint", str(tmp_path / "no-run"), "--episodes", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"dreamer: error: --out {out}") and message in err


def test_an_out_in_a_read_only_folder_is_refused(tmp_path, capsys):
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("this user (root) writes into read-only folders")
        status = main(["eval", "--checkpoint", str(tmp_path / "no-run"), "--out", str(folder / "eval.json")])
    finally:
        folder.chmod(0o755)
    assert status == 2 and f"folder {folder} is not writable" in capsys.readouterr().err


@pytest.fixture
def untrained_checkpoint(monkeypatch):
    """A tiny CartPole agent with its initial weights, handed to `dreamer eval` as if loaded from a
    checkpoint (its sampled actions make the episodes depend on the seed)."""
    from dreamer import evaluate
    from dreamer.envs import spaces
    from dreamer.recipes import build_agent

    cfg = tiny_config(env="gym:CartPole-v1")
    agent = build_agent(cfg, *spaces(cfg.env, cfg.environment), torch.device("cpu"))
    payload = {"progress": {"step": 0}, "path": "untrained"}
    monkeypatch.setattr(evaluate, "load_agent", lambda path, device: (agent, cfg, payload))
    return "untrained"


def evaluate_returns(checkpoint, seed: str, capsys) -> list[float]:
    assert main(["eval", "--checkpoint", checkpoint, "--episodes", "3", "--device", "cpu", "--seed", seed]) == 0
    return json.loads(capsys.readouterr().out)["returns"]


def test_the_same_seed_plays_the_same_episodes(untrained_checkpoint, capsys):
    first = evaluate_returns(untrained_checkpoint, "7", capsys)
    torch.manual_seed(12345)  # whatever the process drew before, the seed decides
    assert evaluate_returns(untrained_checkpoint, "7", capsys) == first
    by_seed = {tuple(evaluate_returns(untrained_checkpoint, seed, capsys)) for seed in ("0", "1", "2")}
    assert len(by_seed) > 1  # the seed decides the episodes


def test_one_episode_is_counted_in_the_singular(untrained_checkpoint, capsys):
    assert main(["eval", "--checkpoint", untrained_checkpoint, "--episodes", "1", "--device", "cpu"]) == 0
    assert "evaluating the policy of step 0: 1 episode in eval mode" in capsys.readouterr().err
