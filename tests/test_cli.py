"""The `dreamer` command line."""

import dataclasses
import json
import subprocess
import sys
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dreamer.cli import main
from dreamer.config import POSITIVE, UNIT_INTERVAL, Config

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


def _numeric_keys(cls=Config, prefix="") -> list[str]:
    """Every int or float config key, as dotted names."""
    keys = []
    for name, kind in typing.get_type_hints(cls).items():
        if dataclasses.is_dataclass(kind):
            keys += _numeric_keys(kind, f"{prefix}{name}.")
        elif kind in (int, float):
            keys.append(prefix + name)
    return keys


NUMERIC = [k for k in _numeric_keys() if not k.startswith("dims.")]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(NUMERIC), word=st.from_regex(r"[a-z]{1,8}", fullmatch=True))
def test_any_numeric_key_given_a_word_is_one_line_naming_it(key, word, capsys):
    assert main(["sizes", "--env", "crafter", "--size", "xs", "--set", f"{key}={word}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"'{key}'" in err and word in err


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from([*POSITIVE, *UNIT_INTERVAL]), value=st.sampled_from(["-1", "0", "1.5", "-0.25"]))
def test_out_of_range_values_are_one_line_naming_the_key(key, value, capsys):
    """POSITIVE keys are integers > 0 (all four values are wrong); UNIT_INTERVAL keys take "0"."""
    code = main(["sizes", "--env", "crafter", "--size", "xs", "--set", f"{key}={value}"])
    err = capsys.readouterr().err.strip()
    if key in UNIT_INTERVAL and value == "0":
        assert code == 0, err
        return
    assert code == 2 and len(err.splitlines()) == 1 and f"'{key}'" in err, (key, value, err)
