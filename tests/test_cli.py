"""The `dreamer` command line."""

import json
import subprocess
import sys

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dreamer.cli import main
from dreamer.config import RECIPE_SECTIONS, ConfigError, Rule, leaf_fields, load_config, sizes

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
        (["sizes", "--env", "crafter", "--size", "xxl"], "unknown size 'xxl' for recipe 2023; accepted: xs, s, m, l, xl"),
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


FIELDS = dict(leaf_fields())
NUMERIC = [key for key, f in FIELDS.items() if f.type in ("int", "float")]
BOUNDED = [key for key in NUMERIC if FIELDS[key].metadata["rule"].low is not None
           or FIELDS[key].metadata["rule"].high is not None]
CHOICES = [key for key, f in FIELDS.items() if f.metadata["rule"].choices]


def _recipe_of(key: str) -> str:
    """The recipe whose config a key belongs to (its sections are refused under the other)."""
    return "2024" if key.split(".")[0] in RECIPE_SECTIONS["2024"] else "2023"


SMALLEST = {"2023": "xs", "2024": "size1m"}


def _one_line_naming(argv: list[str], key: str, capsys) -> str:
    recipe = _recipe_of(key)
    assert main(["config", "--env", "crafter", "--recipe", recipe, "--size", SMALLEST[recipe], *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"'{key}'" in err and "accepted: " in err, err
    return err


def test_every_field_of_the_schema_declares_what_it_accepts():
    """A field added later without bounds or choices fails here."""
    assert len(FIELDS) > 60
    for key, f in FIELDS.items():
        assert isinstance(f.metadata.get("rule"), Rule), key
    assert set(NUMERIC) == set(BOUNDED)  # every number is bounded on at least one side


def test_every_bounded_field_refuses_a_value_beyond_its_bound():
    """The walk over every numeric field: one value just past its lower (or upper) bound."""
    for key in BOUNDED:
        rule, kind = FIELDS[key].metadata["rule"], FIELDS[key].type
        step = 1 if kind == "int" else 0.5
        value = rule.low - step if rule.low is not None else rule.high + step
        with pytest.raises(ConfigError, match=f"'{key}'.*accepted: "):
            recipe = _recipe_of(key)
            load_config([f"{key}={int(value) if kind == 'int' else float(value)}"],
                        {"env": "crafter", "recipe": recipe, "size": SMALLEST[recipe]})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(NUMERIC), word=st.from_regex(r"[a-z]{1,8}", fullmatch=True))
def test_any_numeric_key_given_a_word_is_one_line_naming_it(key, word, capsys):
    assert word in _one_line_naming(["--set", f"{key}={word}"], key, capsys)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(BOUNDED), distance=st.sampled_from([0.5, 1, 7, 1e6]), side=st.sampled_from(["low", "high"]))
def test_values_outside_a_fields_bounds_are_one_line_naming_key_and_value(key, distance, side, capsys):
    rule, kind = FIELDS[key].metadata["rule"], FIELDS[key].type
    bound = rule.low if side == "low" else rule.high
    if bound is None:
        bound, side = (rule.high, "high") if side == "low" else (rule.low, "low")
    open_end = rule.low_open if side == "low" else rule.high_open
    distance = max(1, round(distance)) if kind == "int" else distance
    value = bound - distance if side == "low" else bound + distance
    if open_end and distance == 1e6:
        value = bound  # the excluded bound itself
    value = int(value) if kind == "int" else float(value)
    err = _one_line_naming(["--set", f"{key}={value}"], key, capsys)
    assert repr(value) in err and rule.describe(kind) in err


@pytest.mark.parametrize("key", CHOICES)
def test_choices_name_what_is_accepted(key, capsys):
    err = _one_line_naming(["--set", f"{key}=nonsense"], key, capsys)
    assert ", ".join(FIELDS[key].metadata["rule"].choices) in err


@pytest.mark.parametrize("overrides, keys", [
    (["actor.min_std=2", "actor.max_std=1"], "actor.min_std=2.0, actor.max_std=1.0"),
    (["behavior.return_low=0.9", "behavior.return_high=0.1"], "behavior.return_low=0.9, behavior.return_high=0.1"),
    (["encoder.min_res=3"], "environment.size=64, encoder.min_res=3"),
    (["decoder.min_res=128"], "environment.size=64, decoder.min_res=128"),
    (["replay.capacity=10"], "replay.batch_length=64, replay.capacity=10"),
    (["run.prefill=10"], "run.prefill=10, run.envs=1, replay.batch_length=64"),
])
def test_cross_field_rules(overrides, keys, capsys):
    assert main(["config", "--env", "crafter", "--size", "xs", *[a for o in overrides for a in ("--set", o)]]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and keys in err and "accepted: " in err, err


def test_reported_defects_are_one_line_errors(capsys):
    for key, value in [("behavior.discount_horizon", "0"), ("optim.actor.lr", "-1"), ("encoder.min_res", "0")]:
        _one_line_naming(["--set", f"{key}={value}"], key, capsys)


def test_config_prints_the_resolved_yaml(capsys):
    assert main(["config", "--env", "gym:CartPole-v1", "--size", "s", "--set", "run.steps=5"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["env"] == "gym:CartPole-v1" and cfg["run"]["steps"] == 5 and cfg["rssm"]["deter"] == sizes()["s"]["deter"]


def test_a_bad_value_writes_nothing_to_the_logdir(tmp_path, capsys):
    logdir = tmp_path / "run"
    assert main(["train", "--env", "gym:CartPole-v1", "--logdir", str(logdir), "--set", "optim.actor.lr=-1"]) == 2
    assert not logdir.exists()


def test_sizes_of_the_2024_recipe(capsys):
    """design-2024.md section 8, Crafter column, and the size200m per-module split."""
    assert main(["sizes", "--recipe", "2024", "--env", "crafter", "--json"]) == 0
    rows = {row["size"]: row for row in json.loads(capsys.readouterr().out)}
    assert {name: row["total"] for name, row in rows.items()} == {
        "size1m": 687_875, "size12m": 10_498_259, "size25m": 23_495_475, "size50m": 41_658_259,
        "size100m": 93_480_531, "size200m": 165_965_075, "size400m": 372_920_979}
    split = {k: v for k, v in rows["size200m"].items() if k not in ("size", "total")}
    assert split == {"dyn": 95_495_168, "dec": 20_282_115, "val": 12_850_431, "pol": 12_606_481,
                     "rew": 10_749_183, "con": 10_488_833, "enc": 3_492_864}
    assert main(["sizes", "--recipe", "2024", "--env", "crafter", "--size", "size3m"]) == 2
    assert "unknown size 'size3m' for recipe 2024; accepted: size1m, size12m" in capsys.readouterr().err
    assert main(["sizes", "--recipe", "2025", "--env", "crafter"]) == 2
    assert "config key 'recipe': '2025'; accepted: one of 2023, 2024" in capsys.readouterr().err
