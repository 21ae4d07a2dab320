"""Config layering, overrides and one-line errors."""

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dreamer.config import Config, ConfigError, load_config, sizes, to_yaml


def test_defaults_and_size_preset_feed_the_module_slices():
    cfg = load_config([], {"env": "crafter", "size": "m"})
    assert (cfg.rssm.deter, cfg.rssm.hidden, cfg.encoder.cnn_depth, cfg.actor.layers) == (1024, 640, 48, 3)
    assert (cfg.reward_head.units, cfg.critic.units, cfg.reward_head.layers) == (640, 640, 3)
    # vector encoder and decoder: 5 x 1024 in every size (the reference P1 code)
    for size in sizes():
        cfg = load_config([], {"env": "gym:CartPole-v1", "size": size})
        assert {(c.mlp_units, c.mlp_layers) for c in (cfg.encoder, cfg.decoder)} == {(1024, 5)}
    assert cfg.optim.world_model.lr == 1e-4 and cfg.optim.actor.eps == 1e-5 and cfg.optim.critic.clip == 100.0
    assert cfg.behavior.horizon == 15 and cfg.behavior.lam == 0.95 and cfg.twohot.bins == 255


@pytest.mark.parametrize(
    "env, size, ratio, envs, repeat",
    [("crafter", "xl", 512, 1, 1), ("atari:Pong", "xl", 64, 8, 4), ("atari100k:Pong", "s", 1024, 1, 4),
     ("gym:CartPole-v1", "xs", 512, 1, 1), ("minerl:diamond", "xl", 16, 16, 1)],
)
def test_suite_defaults(env, size, ratio, envs, repeat):
    cfg = load_config([], {"env": env})
    assert (cfg.size, cfg.run.train_ratio, cfg.run.envs, cfg.environment.repeat) == (size, ratio, envs, repeat)
    assert cfg.rssm.deter == sizes()[size]["deter"]


def test_atari100k_protocol_preset():
    """100k policy steps = 400k frames at frame skip 4, no sticky actions, 100 evaluation episodes."""
    cfg = load_config([], {"env": "atari100k:Pong"})
    assert cfg.run.steps * cfg.environment.repeat == 400_000 and cfg.run.steps == 100_000
    assert cfg.environment.sticky == 0.0 and cfg.run.eval_episodes == 100 and cfg.run.envs == 1
    assert cfg.environment.length * cfg.environment.repeat == 108_000  # the standard 30-minute cap
    assert (cfg.environment.actions, cfg.environment.noops) == ("minimal", 30)


def test_atari_suite_as_the_reference_code_ran_it():
    """P1's 200M-frame Atari: sticky actions 0.25, all 18 actions, no random no-ops."""
    env = load_config([], {"env": "atari:Pong"}).environment
    assert (env.sticky, env.actions, env.noops) == (0.25, "all", 0)


def test_flags_and_overrides_win_over_suite_and_size():
    cfg = load_config(["rssm.deter=100", "dims.units=48"], {"env": "crafter", "size": "s", "train_ratio": 32,
                                                           "steps": 5000, "seed": 3, "device": "cpu"})
    assert cfg.size == "s" and cfg.rssm.deter == 100 and cfg.run.train_ratio == 32 and cfg.run.steps == 5000
    assert cfg.rssm.hidden == 48 and cfg.actor.units == 48  # custom width through dims
    assert cfg.encoder.cnn_depth == 32  # untouched preset value
    assert cfg.seed == 3 and cfg.device == "cpu"


def test_overrides_win_over_flags():
    cfg = load_config(["env=gym:CartPole-v1", "run.steps=7"], {"env": "crafter", "steps": 5})
    assert cfg.env == "gym:CartPole-v1" and cfg.run.steps == 7
    assert cfg.size == "xs" and cfg.environment.length == 0  # gym.yaml, the suite of the env that won


def test_size_can_be_set_by_override():
    assert load_config(["size=l"], {"env": "crafter"}).rssm.deter == 2048


@pytest.mark.parametrize(
    "overrides, flags, message",
    [
        (["rssm.detr=3"], {}, "unknown config key 'rssm.detr'; accepted under 'rssm': deter, hidden"),
        (["optim.actor.lrr=1"], {}, "accepted under 'optim.actor': lr, eps, clip"),
        (["bogus=1"], {}, "unknown config key 'bogus'; accepted at the top level: recipe, env, size"),
        (["rssm.deter=abc"], {}, "bad value for config key 'rssm.deter'"),
        (["rssm.deter=-1"], {}, "'rssm.deter': -1; accepted: an integer >= 1"),
        (["actor.unimix=2"], {}, "'actor.unimix': 2.0; accepted: a number in [0, 1)"),
        (["rssm"], {}, "bad override 'rssm'; expected KEY=VALUE"),
        ([], {"size": "xxl"}, "unknown size 'xxl' for recipe 2023; accepted: xs, s, m, l, xl"),
        ([], {"env": "dmlab:rooms"}, "unknown env suite 'dmlab' in env='dmlab:rooms'; accepted: atari, atari100k"),
        ([], {"device": "tpu"}, "'device': 'tpu'; accepted: auto, cpu, cuda or cuda:N"),
        ([], {"steps": "many"}, "bad value for config key 'run.steps'"),
        ([], {"prefill": 10}, "run.prefill=10, run.envs=1, replay.batch_length=64; accepted: prefill // envs >= batch_length"),
    ],
)
def test_errors_are_one_line_and_name_the_problem(overrides, flags, message):
    with pytest.raises(ConfigError) as info:
        load_config(overrides, flags)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


SECTIONS = {f.name: f for f in dataclasses.fields(Config) if dataclasses.is_dataclass(f.default_factory)}


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(SECTIONS)), st.from_regex(r"[a-z_]{1,12}", fullmatch=True), st.integers(-5, 5))
def test_any_unknown_key_is_rejected_by_name(section, leaf, value):
    accepted = [f.name for f in dataclasses.fields(SECTIONS[section].default_factory())]
    if leaf in accepted:
        return
    with pytest.raises(ConfigError) as info:
        load_config([f"{section}.{leaf}={value}"], {"env": "crafter"})
    text = str(info.value)
    assert f"unknown config key '{section}.{leaf}'; accepted under '{section}': {', '.join(accepted)}" == text


def test_yaml_dump_contains_resolved_values():
    text = to_yaml(load_config([], {"env": "crafter", "size": "xs"}))
    assert "deter: 256" in text and "${" not in text
