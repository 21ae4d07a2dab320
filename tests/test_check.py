"""`dreamer check`: the quick form passes on this CPU and writes its report; a failing check makes
the exit status non-zero and says what failed; a device that is not here is one line."""

import json

import pytest
import torch

from dreamer import check
from dreamer.cli import main


def test_quick_check_on_cpu_passes_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "report.json"
    assert main(["check", "--device", "cpu", "--quick", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["torch"] and report["precision"] in ("fp32", "bf16")
    assert {"cuda", "driver", "capability", "tf32", "checks"} <= report.keys()
    results = {c["name"]: c["result"] for c in report["checks"]}
    for recipe in ("2023", "2024"):
        for name in ("build and move", "eager update", "stop and continue", "checkpoint to cpu"):
            assert results[f"{name} ({recipe})"] == "pass", report["checks"]
        assert results[f"compiled equals eager ({recipe})"] == "skip"  # not asked
    assert results["peak memory of an xs update"] == results["torchrun 2 processes"] == "skip"  # --quick
    stop = next(c for c in report["checks"] if c["name"] == "stop and continue (2023)")
    assert stop["message"].startswith("stopped by SIGINT at step 70, continued to 100")
    assert "passed, 0 failed" in capsys.readouterr().out


def test_a_failing_check_fails_the_command_and_names_what_failed(tmp_path, monkeypatch, capsys):
    def moves_nothing(recipe, device, compile_setting):
        raise check.Failed("tensors left on cuda:1 after moving the agent to cuda:0")

    def crashes(recipe, device, compile_setting):
        return {}["missing"]

    monkeypatch.setattr(check, "PER_RECIPE", {"build and move": moves_nothing, "eager update": crashes,
                                              "compiled equals eager": check.compiled_equals_eager})
    monkeypatch.setattr(check, "ONCE", {})
    out = tmp_path / "report.json"
    assert main(["check", "--device", "cpu", "--recipe", "2024", "--json", str(out)]) == 1
    checks = json.loads(out.read_text())["checks"]
    assert [(c["name"], c["result"]) for c in checks] == [
        ("build and move (2024)", "fail"), ("eager update (2024)", "fail"), ("compiled equals eager (2024)", "skip")]
    assert checks[0]["message"] == "tensors left on cuda:1 after moving the agent to cuda:0"
    assert checks[1]["message"].startswith("KeyError: 'missing' (test_check.py:")
    assert "0 passed, 2 failed, 1 skipped" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    pytest.param(["--device", "cuda"], "device 'cuda' requested but CUDA is not available; accepted here: auto, cpu",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here")),
    (["--recipe", "2025"], "unknown --recipe '2025'; accepted: 2023, 2024, both"),
    (["--compile", "auto"], "unknown --compile 'auto'; accepted: on, off"),
])
def test_bad_check_arguments_are_one_line(capsys, argv, message):
    assert main(["check", *argv]) == 2
    err = capsys.readouterr().err
    assert err == f"dreamer: error: {message}\n"
