"""The `dreamer` command line."""

import json
import subprocess
import sys

import pytest

from dreamer.cli import main

TOTALS = {"xs": 8.3e6, "s": 17.9e6, "m": 36.9e6, "l": 76.8e6, "xl": 200.7e6}


def test_sizes_json_meets_the_3_percent_bound(capsys):
    assert main(["sizes", "--env", "crafter", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["size"] for r in rows] == list(TOTALS)
    for row in rows:
        assert {"size", "world_model", "actor", "critic", "total"} <= set(row)
        assert row["total"] == row["world_model"] + row["actor"] + row["critic"]
        assert abs(row["total"] / TOTALS[row["size"]] - 1) < 0.03


def test_sizes_table(capsys):
    assert main(["sizes", "--env", "crafter", "--size", "m"]) == 0
    out = capsys.readouterr().out
    assert "32,468,675" in out and "36,910,547" in out and "xl" not in out


def test_sizes_on_a_gym_env(capsys):
    assert main(["sizes", "--env", "gym:CartPole-v1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["actor"] > 0 and rows[0]["world_model"] < rows[-1]["world_model"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sizes", "--env", "crafter", "--size", "xxl"], "unknown size 'xxl'; accepted: xs, s, m, l, xl"),
        (["sizes", "--env", "gym:NoSuchEnv-v0"], "unknown gymnasium id 'NoSuchEnv-v0'"),
        (["sizes", "--env", "crafter", "--set", "rssm.x=1"], "unknown config key 'rssm.x'"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "dreamer", "sizes", "--env", "crafter", "--size", "xs"],
                         capture_output=True, text=True, check=True).stdout
    assert "8,268,083" in out
