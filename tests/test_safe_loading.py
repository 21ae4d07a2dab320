"""What a run folder can make this package do: checkpoints load without running code, the envs'
pickles are unpickled only when this user's key signed them, checkpoints of the earlier format
convert once with `upgrade-checkpoint --trust`, and a checkpoint with parts missing is refused in
one line. Every case runs the real command on real files."""

import os

import numpy as np
import pytest
import torch

from dreamer import checkpoint
from dreamer.cli import main
from dreamer.nets.rssm import Latent
from tests.conftest import train_args


class RunsACommand:
    """Unpickling it calls `os.system`: what a malicious checkpoint would hold."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny trained run with two checkpoints (steps 100 and 120)."""
    logdir = tmp_path_factory.mktemp("run")
    assert main(train_args(logdir, "gym:CartPole-v1", 100)) == 0
    assert main(train_args(logdir, "gym:CartPole-v1", 120)) == 0
    return logdir


def _payload(path):
    with torch.serialization.safe_globals(checkpoint.SAFE_GLOBALS):
        return torch.load(path, weights_only=True)


def _copy_run(run, tmp_path):
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(run, target)
    return target


def test_a_checkpoint_that_would_run_code_is_refused_by_eval_imagine_and_train(run, tmp_path, capsys, caplog):
    logdir = _copy_run(run, tmp_path)
    marker = tmp_path / "marker"
    newest = checkpoint.list_checkpoints(logdir / "checkpoints")[-1]
    evil = logdir / "checkpoints" / "ckpt-0000000999.pt"
    torch.save({**_payload(newest), "note": RunsACommand(f"touch {marker}")}, evil)
    for command in (["eval", "--checkpoint", str(evil), "--episodes", "1", "--device", "cpu"],
                    ["imagine", "--checkpoint", str(evil), "--out", str(tmp_path / "im.png"), "--device", "cpu"]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(evil) in err[0] and "posix.system" in err[0] and "not loaded" in err[0], err
    # a run folder's newest checkpoint: eval and a continued run fall back to the one before, and say why
    assert main(["eval", "--checkpoint", str(logdir), "--episodes", "1", "--device", "cpu"]) == 0
    assert main(train_args(logdir, "gym:CartPole-v1", 140)) == 0
    assert f"checkpoint {evil} holds objects that loading would have to run (posix.system)" in caplog.text
    assert not marker.exists()


def test_envs_pickled_under_another_key_are_not_unpickled(run, tmp_path, monkeypatch, caplog):
    logdir = _copy_run(run, tmp_path)
    monkeypatch.setenv("DREAMER_KEY_FILE", str(tmp_path / "another-key"))
    assert main(train_args(logdir, "gym:CartPole-v1", 140)) == 0
    assert "env state was not signed with this user's key" in caplog.text
    assert (tmp_path / "another-key").stat().st_mode & 0o777 == 0o600


def _as_format_2(payload):
    """The layout the previous version wrote: a pickled Latent, unsigned envs, the replay's parts apart."""
    ranks = []
    for local in payload["ranks"]:
        local = dict(local)
        latent, action = local["policy"]
        local["policy"] = (Latent(*latent), action)
        local["driver"] = {k: v for k, v in local["driver"].items() if k != "envs_signatures"}
        replay = local.pop("replay")
        local["replay_rng"], local["replay_queue"] = replay["rng"], {"queue": replay["queue"]}
        ranks.append(local)
    return {**payload, "format": 2, "ranks": ranks}


def test_a_checkpoint_of_format_2_is_converted_once_with_trust(run, tmp_path, capsys, caplog):
    logdir = _copy_run(run, tmp_path)
    paths = checkpoint.list_checkpoints(logdir / "checkpoints")
    original = _payload(paths[-1])
    for path in paths:
        torch.save(_as_format_2(_payload(path)), path)
    assert main(train_args(logdir, "gym:CartPole-v1", 140)) == 2
    err = capsys.readouterr().err
    assert "is of an earlier version (format 2, it pickles dreamer.nets.rssm.Latent); convert it once with " \
           f"`dreamer upgrade-checkpoint {logdir / 'checkpoints'} --trust`" in err
    assert main(["upgrade-checkpoint", str(logdir)]) == 2
    assert "accepted: --trust" in capsys.readouterr().err
    assert main(["upgrade-checkpoint", str(logdir), "--trust"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{path}: format 2 -> 3" for path in paths]
    upgraded = _payload(paths[-1])
    assert upgraded["ranks"][0]["replay"] == original["ranks"][0]["replay"]
    np.testing.assert_array_equal(upgraded["ranks"][0]["driver"]["obs"]["vector"],
                                  original["ranks"][0]["driver"]["obs"]["vector"])
    assert main(["upgrade-checkpoint", str(paths[-1]), "--trust"]) == 0
    assert capsys.readouterr().out.strip() == f"{paths[-1]}: already format 3"
    assert main(train_args(logdir, "gym:CartPole-v1", 140)) == 0
    assert "not signed" not in caplog.text  # the envs, signed on conversion, continue


@pytest.mark.parametrize("damage", ["top-level key", "nested key"])
def test_a_checkpoint_with_parts_missing_is_refused_in_one_line(run, tmp_path, capsys, damage):
    logdir = _copy_run(run, tmp_path)
    for path in checkpoint.list_checkpoints(logdir / "checkpoints"):
        payload = _payload(path)
        if damage == "top-level key":
            del payload["metrics"]
        else:
            del payload["ranks"][0]["driver"]
        torch.save(payload, path)
    assert main(train_args(logdir, "gym:CartPole-v1", 140)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a run cannot continue from it" in err[0]
    assert ("lacks metrics" if damage == "top-level key" else "KeyError: 'driver'") in err[0]
