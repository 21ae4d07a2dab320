"""Typed configuration: dataclass schema, YAML defaults, size presets and dotted overrides.

The dataclasses below declare names, types and what each field accepts (a `Rule`: bounds,
choices or a pattern); every value comes from `configs/*.yaml` (one source of truth). A config is
assembled in this order, later layers winning:

    recipe 2023:  defaults.yaml  <  <suite>.yaml (from --env)  <  sizes.yaml[size] as `dims`  <  flags and --set
    recipe 2024:  defaults.yaml  <  <suite>.yaml  <  2024/defaults.yaml  <  2024/<suite>.yaml
                  <  2024/sizes.yaml[size] as `v2024.dims`  <  flags and --set

Each recipe has its own model sections (`RECIPE_SECTIONS`); the other recipe's sections are filled
with their defaults so the schema resolves, left out of the saved YAML, and refused in overrides.

Unknown keys, values of the wrong type or outside their field's rule, broken rules across fields
(`CROSS_RULES`) and unknown sizes or suites raise `ConfigError` with a one-line message that names
the key, the value and what is accepted.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import yaml
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf import errors as oc_errors

from dreamer.choices import COMPILE_SETTINGS, PRECISIONS
from dreamer.errors import ConfigError  # raised here; imported from here by the rest of the package


def _slug(text: str) -> str:
    """`gym:CartPole-v1` -> `gym-CartPole-v1`, for folder names."""
    return str(text).replace(":", "-").replace("/", "-")


OmegaConf.register_resolver("slug", _slug, replace=True)


RECIPES = ("2023", "2024")  # P1 = arXiv 2301.04104v1; 2024 = v2 / Nature


@dataclass(frozen=True)
class Rule:
    """What a field accepts, declared beside its type: numbers within [low, high] (an open end
    excludes the bound), one of `choices`, or text matching `pattern` (described by `text`)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    text: str = ""

    def accepts(self, value: Any) -> bool:
        if isinstance(value, (list, tuple)):
            return len(value) > 0 and all(self.accepts(item) for item in value)
        if self.choices:
            return value in self.choices
        if self.pattern is not None:
            return re.fullmatch(self.pattern, str(value)) is not None
        if not math.isfinite(value):
            return False
        return ((self.low is None or (value > self.low if self.low_open else value >= self.low))
                and (self.high is None or (value < self.high if self.high_open else value <= self.high)))

    def describe(self, kind: str) -> str:
        """What is accepted, for messages; `kind` is the field's type name."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.pattern is not None:
            return self.text
        noun = "an integer" if kind == "int" else "a number"
        low = None if self.low is None else f"{self.low:g}"
        high = None if self.high is None else f"{self.high:g}"
        if low is not None and high is not None:
            return f"{noun} in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        if low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {low}"
        return f"{noun} {'<' if self.high_open else '<='} {high}" if high is not None else noun


def _field(rule: Rule) -> Any:
    return field(default=MISSING, metadata={"rule": rule})


def at_least(low: float) -> Any:
    return _field(Rule(low=low))


def above(low: float) -> Any:
    return _field(Rule(low=low, low_open=True))


def between(low: float, high: float, high_open: bool = False) -> Any:
    return _field(Rule(low=low, high=high, high_open=high_open))


def one_of(*choices: str) -> Any:
    return _field(Rule(choices=choices))


def text(pattern: str, description: str) -> Any:
    return _field(Rule(pattern=pattern, text=description))


@dataclass
class Dims:
    """Widths shared by the modules, set by the size preset (design section 5)."""

    deter: int = at_least(1)
    cnn_depth: int = at_least(1)
    units: int = at_least(1)
    layers: int = at_least(0)


@dataclass
class RunConfig:
    steps: int = at_least(1)
    train_ratio: float = at_least(0)
    envs: int = at_least(1)
    prefill: int = at_least(0)
    log_every: int = at_least(1)
    save_every: int = at_least(1)
    save_every_seconds: float = above(0)
    eval_episodes: int = at_least(0)
    video_every: int = at_least(0)
    max_nonfinite: int = at_least(1)
    precision: str = one_of(*PRECISIONS)
    compile: str = one_of(*COMPILE_SETTINGS)
    compile_threads: int = at_least(0)
    process_group_timeout: float = above(0)
    agree_every: int = at_least(1)


@dataclass
class ImagineConfig:
    sequences: int = at_least(1)
    context: int = at_least(1)
    horizon: int = at_least(0)
    scale: int = at_least(1)
    fps: int = at_least(1)


@dataclass
class EnvConfig:
    repeat: int = at_least(1)
    size: int = at_least(1)
    length: int = at_least(0)
    sticky: float = between(0, 1)
    noops: int = at_least(0)
    actions: str = one_of("minimal", "all")  # Atari: the game's minimal action set or all 18
    color: str = one_of("rgb", "gray")  # Atari frames: 3 channels or 1
    timeout: float = above(0)


@dataclass
class ReplayConfig:
    capacity: int = at_least(1)
    batch_size: int = at_least(1)
    batch_length: int = at_least(1)
    chunk: int = at_least(1)
    directory: str = text(r".*", "a folder, or empty for LOGDIR/replay")
    storage: str = one_of("memory", "disk")


@dataclass
class RSSMConfig:
    deter: int = at_least(1)
    hidden: int = at_least(1)
    stoch: int = at_least(1)
    classes: int = at_least(2)
    unimix: float = between(0, 1, high_open=True)


@dataclass
class CoderConfig:
    """Encoder or decoder: CNN for images, MLP for vectors."""

    cnn_depth: int = at_least(1)
    mlp_units: int = at_least(1)
    mlp_layers: int = at_least(0)
    min_res: int = at_least(1)


@dataclass
class HeadConfig:
    units: int = at_least(1)
    layers: int = at_least(0)


@dataclass
class TwoHotConfig:
    bins: int = at_least(2)
    limit: float = above(0)


@dataclass
class WorldModelConfig:
    pred_scale: float = at_least(0)
    dyn_scale: float = at_least(0)
    rep_scale: float = at_least(0)
    free_nats: float = at_least(0)


@dataclass
class ActorConfig:
    units: int = at_least(1)
    layers: int = at_least(0)
    unimix: float = between(0, 1, high_open=True)
    min_std: float = above(0)
    max_std: float = above(0)
    entropy: float = at_least(0)


@dataclass
class CriticConfig:
    units: int = at_least(1)
    layers: int = at_least(0)
    slow_rate: float = between(0, 1)
    slow_reg: float = at_least(0)


@dataclass
class BehaviorConfig:
    horizon: int = at_least(1)
    discount_horizon: float = at_least(1)  # discount = 1 - 1 / discount_horizon
    lam: float = between(0, 1)
    return_decay: float = between(0, 1)
    return_low: float = between(0, 1)
    return_high: float = between(0, 1)
    return_floor: float = above(0)


@dataclass
class OptimConfig:
    lr: float = above(0)
    eps: float = above(0)
    clip: float = above(0)


@dataclass
class OptimsConfig:
    world_model: OptimConfig = field(default_factory=OptimConfig)
    actor: OptimConfig = field(default_factory=OptimConfig)
    critic: OptimConfig = field(default_factory=OptimConfig)


@dataclass
class Dims2024:
    """Widths of a 2024 preset (configs/2024/sizes.yaml; design-2024.md section 8)."""

    units: int = at_least(1)
    deter: int = at_least(1)
    classes: int = at_least(2)
    depth: int = at_least(1)


@dataclass
class LaPropConfig:
    """The 2024 optimizer (design-2024.md section 1, `dreamer/v2024/laprop.py`)."""

    lr: float = above(0)
    beta1: float = between(0, 1, high_open=True)
    beta2: float = between(0, 1, high_open=True)
    eps: float = above(0)
    agc: float = above(0)
    pmin: float = above(0)
    warmup: int = at_least(0)


@dataclass
class V2024Config:
    """Everything the 2024 recipe's modules read (design-2024.md sections 1-6); the loop, replay,
    environment and `behavior` sections are shared with P1."""

    dims: Dims2024 = field(default_factory=Dims2024)
    stoch: int = at_least(1)
    blocks: int = at_least(1)
    cnn_mults: list[int] = field(default=MISSING, metadata={"rule": Rule(low=1)})
    coder_layers: int = at_least(0)
    head_layers: int = at_least(0)
    actor_layers: int = at_least(0)
    critic_layers: int = at_least(0)
    norm_eps: float = above(0)
    unimix: float = between(0, 1, high_open=True)
    bins: int = at_least(2)
    limit: float = above(0)
    actor_min_std: float = above(0)
    actor_max_std: float = above(0)
    actor_outscale: float = at_least(0)
    free_nats: float = at_least(0)
    dyn_scale: float = at_least(0)
    rep_scale: float = at_least(0)
    repval_scale: float = at_least(0)
    entropy: float = at_least(0)
    slow_rate: float = between(0, 1)
    slow_reg: float = at_least(0)
    optim: LaPropConfig = field(default_factory=LaPropConfig)


@dataclass
class Config:
    recipe: str = one_of(*RECIPES)
    env: str = text(r"[a-z0-9_]+(:.+)?", "SUITE or SUITE:TASK, e.g. crafter, gym:CartPole-v1")
    size: str = text(r"\w+", "a preset of configs/sizes.yaml (2023) or configs/2024/sizes.yaml (2024)")
    seed: int = at_least(0)
    logdir: str = text(r".+", "a folder")
    device: str = text(r"auto|cpu|cuda(:\d+)?", "auto, cpu, cuda or cuda:N")
    dims: Dims = field(default_factory=Dims)
    run: RunConfig = field(default_factory=RunConfig)
    environment: EnvConfig = field(default_factory=EnvConfig)
    imagine: ImagineConfig = field(default_factory=ImagineConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    rssm: RSSMConfig = field(default_factory=RSSMConfig)
    encoder: CoderConfig = field(default_factory=CoderConfig)
    decoder: CoderConfig = field(default_factory=CoderConfig)
    reward_head: HeadConfig = field(default_factory=HeadConfig)
    cont_head: HeadConfig = field(default_factory=HeadConfig)
    twohot: TwoHotConfig = field(default_factory=TwoHotConfig)
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    actor: ActorConfig = field(default_factory=ActorConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    behavior: BehaviorConfig = field(default_factory=BehaviorConfig)
    optim: OptimsConfig = field(default_factory=OptimsConfig)
    v2024: V2024Config = field(default_factory=V2024Config)


# Sections only one recipe reads; every other section is shared.
RECIPE_SECTIONS = {
    "2023": ("dims", "rssm", "encoder", "decoder", "reward_head", "cont_head", "twohot", "world_model", "actor",
             "critic", "optim"),
    "2024": ("v2024",),
}
PLACEHOLDER_SIZE = {"2023": "xs", "2024": "size1m"}  # fills a recipe's sections while the other is in use


def other_recipe(recipe: str) -> str:
    return "2024" if recipe == "2023" else "2023"


def leaf_fields(node: type | None = None, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field]]:
    """(dotted key, field) of every value of the schema, depth first."""
    for f in dataclasses.fields(node or Config):
        kind = f.default_factory if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        if kind is not None and dataclasses.is_dataclass(kind):
            yield from leaf_fields(kind, f"{prefix}{f.name}.")  # type: ignore[arg-type]
        else:
            yield f"{prefix}{f.name}", f


# Command-line flags that are shorthands for config keys.
FLAG_KEYS = {
    "recipe": "recipe",
    "env": "env",
    "size": "size",
    "seed": "seed",
    "logdir": "logdir",
    "device": "device",
    "steps": "run.steps",
    "train_ratio": "run.train_ratio",
    "envs": "run.envs",
    "prefill": "run.prefill",
    "replay_dir": "replay.directory",
    "precision": "run.precision",
    "compile": "run.compile",
}


def config_dir() -> Path:
    """`configs/` of a source checkout, or its copy inside an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "configs", here.parent / "configs"):
        if (candidate / "defaults.yaml").is_file():
            return candidate
    raise ConfigError(f"configs/defaults.yaml not found next to {here}; reinstall the package")


def read_yaml(name: str) -> dict:
    return yaml.safe_load((config_dir() / name).read_text()) or {}


def sizes(recipe: str = "2023") -> dict[str, dict[str, int]]:
    """A recipe's size presets in file order: xs .. xl (2023), size1m .. size400m (2024)."""
    return read_yaml("sizes.yaml" if recipe == "2023" else "2024/sizes.yaml")


def suites() -> list[str]:
    """Env suites that have a config file (the part of `--env` before ':')."""
    names = [path.stem for path in config_dir().glob("*.yaml")]  # configs/2024/ holds overlays, not suites
    return sorted(n for n in names if n not in ("defaults", "sizes"))


def suite_of(env: str) -> str:
    """`crafter` -> crafter, `atari:Pong` -> atari, `gym:CartPole-v1` -> gym."""
    suite = env.split(":", 1)[0]
    known = suites()
    if suite not in known:
        raise ConfigError(f"unknown env suite {suite!r} in env={env!r}; accepted: {', '.join(known)}")
    return suite


def _schema_keys(node: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else []


def _describe(err: oc_errors.OmegaConfBaseException) -> str:
    """Turn an OmegaConf error into one line that names the key and what is accepted."""
    key = getattr(err, "full_key", None) or "?"
    if isinstance(err, oc_errors.ConfigKeyError):
        parent, _, _ = key.rpartition(".")
        node: Any = Config
        for part in filter(None, parent.split(".")):
            hints = {f.name: f for f in dataclasses.fields(node)}
            node = hints[part].default_factory() if part in hints else None  # type: ignore[misc]
            if node is None:
                break
        where = f"under {parent!r}" if parent else "at the top level"
        accepted = ", ".join(_schema_keys(node)) or "none"
        return f"unknown config key {key!r}; accepted {where}: {accepted}"
    message = str(err).splitlines()[0] if str(err) else type(err).__name__
    fields = dict(leaf_fields())
    if key in fields:
        message += f"; accepted: {fields[key].metadata['rule'].describe(str(fields[key].type))}"
    return f"bad value for config key {key!r}: {message}"


def _merge(*layers: Any) -> DictConfig:
    try:
        return OmegaConf.merge(OmegaConf.structured(Config), *layers)  # type: ignore[return-value]
    except oc_errors.OmegaConfBaseException as err:
        raise ConfigError(_describe(err)) from None


def _parse_overrides(overrides: Sequence[str]) -> DictConfig:
    for item in overrides:
        if "=" not in item or not item.split("=", 1)[0]:
            raise ConfigError(f"bad override {item!r}; expected KEY=VALUE, e.g. rssm.deter=512")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except oc_errors.OmegaConfBaseException as err:
        raise ConfigError(f"bad override: {str(err).splitlines()[0]}") from None


def _recipe_layers(recipe: str, suite: str, size: str) -> list[dict]:
    """The YAML layers one recipe puts over defaults.yaml and the suite file, size preset last."""
    presets = sizes(recipe)
    if size not in presets:
        raise ConfigError(f"unknown size {size!r} for recipe {recipe}; accepted: {', '.join(presets)}")
    if recipe == "2023":
        return [{"dims": presets[size]}]
    overlay = config_dir() / "2024" / f"{suite}.yaml"
    suite_layer = read_yaml(f"2024/{suite}.yaml") if overlay.is_file() else {}
    return [read_yaml("2024/defaults.yaml"), suite_layer, {"v2024": {"dims": presets[size]}}]


def _inactive_layers(recipe: str, suite: str) -> list[dict]:
    """Defaults for the sections of the recipe not in use (they resolve, nothing reads them)."""
    other = other_recipe(recipe)
    layers = [read_yaml("defaults.yaml"), read_yaml(f"{suite}.yaml"),
              *_recipe_layers(other, suite, PLACEHOLDER_SIZE[other])]
    keep = RECIPE_SECTIONS[other]
    return [{k: v for k, v in layer.items() if k in keep} for layer in layers]


def _refuse_other_recipe(user: DictConfig, recipe: str) -> None:
    other = other_recipe(recipe)
    for section in RECIPE_SECTIONS[other]:
        if section in user:
            raise ConfigError(f"config key {section!r} belongs to recipe {other}, but this run uses recipe {recipe}; "
                              f"accepted here: {', '.join(RECIPE_SECTIONS[recipe])} and the shared sections")


def _user_layer(overrides: Sequence[str], flags: Mapping[str, Any] | None) -> DictConfig:
    """What a command gives: `flags` (see FLAG_KEYS; None = not given) under dotted `overrides`."""
    user = OmegaConf.create({})
    for name, value in (flags or {}).items():
        if value is None:
            continue
        if name not in FLAG_KEYS:
            raise ConfigError(f"unknown flag {name!r}; accepted: {', '.join(FLAG_KEYS)}")
        OmegaConf.update(user, FLAG_KEYS[name], value, force_add=True)
    return OmegaConf.merge(user, _parse_overrides(overrides))  # type: ignore[return-value]


def load_config(
    overrides: Sequence[str] = (), flags: Mapping[str, Any] | None = None
) -> Config:
    """Assemble the config from the YAML layers, `flags` (see FLAG_KEYS) and dotted `overrides`,
    which win over flags."""
    user = _user_layer(overrides, flags)
    defaults = read_yaml("defaults.yaml")
    first = _merge(defaults, user)
    recipe, suite = str(first.recipe), suite_of(str(first.env))
    if recipe not in RECIPES:
        raise ConfigError(f"bad value for config key 'recipe': {recipe!r}; accepted: one of {', '.join(RECIPES)}")
    _refuse_other_recipe(user, recipe)
    suite_file = read_yaml(f"{suite}.yaml")
    if recipe == "2024":  # the 2024 overlays may set the size too
        layers = _recipe_layers(recipe, suite, PLACEHOLDER_SIZE[recipe])[:-1]
        size = str(_merge(defaults, suite_file, *layers, user).size)
    else:
        size = str(_merge(defaults, suite_file, user).size)
    layers = _inactive_layers(recipe, suite) + _recipe_layers(recipe, suite, size)
    return _to_config(_merge(defaults, suite_file, *layers, user))


def _value(cfg: Config, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _image_size_fits(cfg: Config, coder: str) -> bool:
    steps = cfg.environment.size / getattr(cfg, coder).min_res
    return steps >= 1 and steps == 2 ** round(math.log2(steps))


# Rules across fields: (keys, holds(cfg), what is accepted).
CROSS_RULES: list[tuple[tuple[str, ...], Callable[[Config], bool], str]] = [
    (("actor.min_std", "actor.max_std"), lambda c: c.actor.min_std < c.actor.max_std, "min_std < max_std"),
    (("behavior.return_low", "behavior.return_high"), lambda c: c.behavior.return_low < c.behavior.return_high,
     "return_low < return_high"),
    (("replay.batch_length", "replay.capacity", "run.envs"),
     lambda c: c.replay.batch_length <= c.replay.capacity // c.run.envs,
     "batch_length <= capacity // envs (the replay capacity per env)"),
    (("recipe", "run.prefill", "run.envs", "replay.batch_length"),
     lambda c: c.recipe == "2024" or c.run.prefill // c.run.envs >= c.replay.batch_length,
     "prefill // envs >= batch_length (a full window per env before training starts)"),
    (("recipe", "run.prefill"), lambda c: c.recipe == "2023" or c.run.prefill == 0,
     "prefill 0 under recipe 2024 (it trains once the replay holds batch_size x batch_length windows)"),
    (("v2024.actor_min_std", "v2024.actor_max_std"), lambda c: c.v2024.actor_min_std < c.v2024.actor_max_std,
     "actor_min_std < actor_max_std"),
    (("environment.size", "encoder.min_res"), lambda c: _image_size_fits(c, "encoder"),
     "image size = min_res times a power of 2"),
    (("environment.size", "decoder.min_res"), lambda c: _image_size_fits(c, "decoder"),
     "image size = min_res times a power of 2"),
]


def validate(cfg: Config) -> None:
    """Every field against the rule its schema declares, then the rules across fields."""
    for key, f in leaf_fields():
        rule: Rule = f.metadata["rule"]
        value = _value(cfg, key)
        if not rule.accepts(value):
            raise ConfigError(f"bad value for config key {key!r}: {value!r}; accepted: {rule.describe(str(f.type))}")
    inactive = RECIPE_SECTIONS[other_recipe(cfg.recipe)]
    for keys, holds, accepted in CROSS_RULES:
        if any(key.split(".")[0] in inactive for key in keys):
            continue  # a rule of the other recipe's sections, which this run does not read
        if not holds(cfg):
            values = ", ".join(f"{key}={_value(cfg, key)!r}" for key in keys)
            raise ConfigError(f"bad values for config keys {values}; accepted: {accepted}")


def _to_config(node: DictConfig) -> Config:
    """Resolve interpolations into the dataclasses and check ranges."""
    try:
        cfg = OmegaConf.to_object(node)
    except oc_errors.OmegaConfBaseException as err:
        raise ConfigError(_describe(err)) from None
    assert isinstance(cfg, Config)
    # YAML reads a bare on/off as a boolean, which a str field then holds as "True"/"False"
    cfg.run.compile = {"True": "on", "False": "off"}.get(str(cfg.run.compile), cfg.run.compile)
    validate(cfg)
    return cfg


def to_yaml(cfg: Config) -> str:
    """The resolved config as YAML (saved with every run), without the other recipe's sections."""
    node = OmegaConf.to_container(OmegaConf.structured(cfg))
    other = other_recipe(cfg.recipe)
    return OmegaConf.to_yaml({k: v for k, v in node.items() if k not in RECIPE_SECTIONS[other]})


def from_yaml(text: str) -> Config:
    """A config saved by `to_yaml` (e.g. inside a checkpoint), validated like any other."""
    saved = yaml.safe_load(text)
    recipe = str(saved.get("recipe", "2023"))  # configs saved before the 2024 recipe existed are P1's
    suite = suite_of(str(saved.get("env", "")))
    return _to_config(_merge(*_inactive_layers(recipe, suite), saved))


ARCHITECTURE = ("rssm", "encoder", "decoder", "reward_head", "cont_head", "twohot")


def identity(cfg: Config) -> dict[str, Any]:
    """What a checkpoint must share with the run that loads it: recipe, env and every network width."""
    out: dict[str, Any] = {"recipe": cfg.recipe, "env": cfg.env, "size": cfg.size}
    if cfg.recipe == "2024":
        shape = {k: v for k, v in dataclasses.asdict(cfg.v2024).items() if k != "optim"}
        out.update({f"v2024.{k}": v for k, v in shape.items()})
        return out
    for name in ARCHITECTURE:
        out.update({f"{name}.{k}": v for k, v in dataclasses.asdict(getattr(cfg, name)).items()})
    for name in ("actor", "critic"):
        part = getattr(cfg, name)
        out.update({f"{name}.units": part.units, f"{name}.layers": part.layers})
    return out


# What a continued run may change: how long and where it runs, how often it logs and saves. Every
# other key keeps the value the run was started with.
CONTINUATION_MAY_CHANGE = ("logdir", "device", "run.steps", "run.compile", "run.compile_threads",
                           "run.process_group_timeout", "run.agree_every", "run.log_every", "run.save_every",
                           "run.save_every_seconds", "run.video_every", "run.eval_episodes", "run.max_nonfinite",
                           "environment.timeout")


def _dotted(node: Any, prefix: str = "") -> Iterator[str]:
    for key, value in node.items():
        if isinstance(value, Mapping):
            yield from _dotted(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def continued_config(saved: Config, logdir: str, overrides: Sequence[str] = (),
                     flags: Mapping[str, Any] | None = None) -> Config:
    """The config of the run in `logdir` (saved as `saved`) continued: `saved` with the given
    `flags` and `overrides`. A given key outside CONTINUATION_MAY_CHANGE must keep its saved value;
    where any does not, the run is refused with one line per such key and the command that continues it."""
    user = _user_layer(overrides, flags)
    merged = _merge(OmegaConf.structured(saved), user)  # typed by the schema; checked once they agree
    differ = []
    for key in _dotted(OmegaConf.to_container(user)):
        was, now = _value(saved, key), OmegaConf.select(merged, key)
        if key not in CONTINUATION_MAY_CHANGE and was != now:
            differ.append(f"  {key}: the run has {was!r}, this command gives {now!r}")
    if differ:
        lines = "\n".join(differ)
        raise ConfigError(f"{logdir} holds a run this command does not match:\n{lines}\ncontinue it with "
                          f"`dreamer train --logdir {logdir}` (add --steps N to train longer), or start a new "
                          f"run in another --logdir")
    return _to_config(merged)
