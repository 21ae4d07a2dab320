"""What `dreamer` does before a command runs: help without heavy imports, usage errors, summaries."""

import json
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest

from dreamer.cli import main

# Imports that cost seconds: torch (and its compiler stack) and the env suites' simulators.
HEAVY_MODULES = ("torch", "torch._dynamo", "crafter", "ale_py", "dm_control", "minerl")

# Runs `dreamer ARGS` in a fresh interpreter and prints, as JSON, the exit status, what was printed
# and which heavy modules were imported by then.
PROBE = """
import contextlib, io, json, sys
from dreamer.cli import main
heavy, argv = json.loads(sys.argv[1]), json.loads(sys.argv[2])
printed = io.StringIO()
try:
    with contextlib.redirect_stdout(printed):
        status = main(argv)
except SystemExit as exit:
    status = exit.code
print(json.dumps({"status": status, "out": printed.getvalue(), "heavy": [m for m in heavy if m in sys.modules]}))
"""


def probe(*argv: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(HEAVY_MODULES), json.dumps(argv)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def commands() -> list[str]:
    """The subcommands, as the top-level usage lists them: `{sizes,config,...}`."""
    usage = probe("--help")["out"]
    return re.search(r"\{([a-z0-9,-]+)\}", usage).group(1).split(",")


def test_help_of_dreamer_and_of_every_command_imports_neither_torch_nor_an_env_suite():
    names = commands()
    assert {"train", "eval", "imagine", "config", "sizes"} <= set(names)
    for argv in (["--help"], *([name, "--help"] for name in names)):
        result = probe(*argv)
        assert result["status"] == 0 and result["out"].startswith(f"usage: dreamer {' '.join(argv[:-1])}".strip())
        assert result["heavy"] == [], f"dreamer {' '.join(argv)} imported {result['heavy']}"


def test_config_command_loads_the_config_without_torch():
    result = probe("config", "--env", "gym:CartPole-v1", "--set", "run.precision=bf16", "--set", "run.compile=on")
    assert result["status"] == 0 and "precision: bf16" in result["out"] and "compile: 'on'" in result["out"]
    assert result["heavy"] == []


def test_config_errors_need_no_torch_either():
    result = probe("config", "--env", "gym:CartPole-v1", "--set", "run.precision=fp8")
    assert result["status"] == 2 and result["heavy"] == []


@pytest.mark.parametrize("command, valid", [("train", []), ("eval", ["--checkpoint", "run"]), ("config", [])])
def test_an_unknown_flag_is_reported_under_the_commands_usage(command, valid, capsys):
    with pytest.raises(SystemExit) as exit:
        main([command, *valid, "--bogus", "value"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: dreamer {command} ")
    assert err.rstrip().endswith(f"dreamer {command}: error: unrecognized arguments: --bogus value")


def test_a_misspelt_command_is_still_reported_by_the_top_level_parser(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["trian"])
    assert exit.value.code == 2
    assert "dreamer: error: argument command: invalid choice: 'trian'" in capsys.readouterr().err


@pytest.mark.parametrize("episodes, text", [(1, "(1 episode)"), (2, "(2 episodes)"), (1234, "(1,234 episodes)")])
def test_train_summary_counts_episodes_in_words_that_agree(episodes, text, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("dreamer.train.train", lambda cfg: SimpleNamespace(step=100, episodes=episodes))
    assert main(["train", "--env", "gym:CartPole-v1", "--logdir", str(tmp_path / "run")]) == 0
    assert f"dreamer: trained to step 100 {text}; logs in {tmp_path / 'run'}" in capsys.readouterr().out
