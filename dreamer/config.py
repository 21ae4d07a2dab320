"""Typed configuration: dataclass schema, YAML defaults, size presets and dotted overrides.

The dataclasses below only declare names and types; every value comes from `configs/*.yaml`
(one source of truth). A config is assembled in this order, later layers winning:

    defaults.yaml  <  <suite>.yaml (from --env)  <  sizes.yaml[size] as `dims`  <  flags and --set

Unknown keys, values of the wrong type and unknown sizes or suites raise `ConfigError` with a
one-line message that names the offending key or value and lists what is accepted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf import errors as oc_errors

from dreamer.compiler import SETTINGS as COMPILE_SETTINGS
from dreamer.precision import PRECISIONS


def _slug(text: str) -> str:
    """`gym:CartPole-v1` -> `gym-CartPole-v1`, for folder names."""
    return str(text).replace(":", "-").replace("/", "-")


OmegaConf.register_resolver("slug", _slug, replace=True)


class ConfigError(ValueError):
    """A bad configuration value; the message is one line meant for the user."""


@dataclass
class Dims:
    """Widths shared by the modules, set by the size preset (design section 5)."""

    deter: int = MISSING
    cnn_depth: int = MISSING
    units: int = MISSING
    layers: int = MISSING


@dataclass
class RunConfig:
    steps: int = MISSING
    train_ratio: float = MISSING
    envs: int = MISSING
    prefill: int = MISSING
    log_every: int = MISSING
    save_every: int = MISSING
    eval_episodes: int = MISSING
    video_every: int = MISSING
    max_nonfinite: int = MISSING
    precision: str = MISSING
    compile: str = MISSING


@dataclass
class ImagineConfig:
    sequences: int = MISSING
    context: int = MISSING
    horizon: int = MISSING
    scale: int = MISSING
    fps: int = MISSING


@dataclass
class EnvConfig:
    repeat: int = MISSING
    size: int = MISSING
    length: int = MISSING
    sticky: float = MISSING
    noops: int = MISSING
    timeout: float = MISSING


@dataclass
class ReplayConfig:
    capacity: int = MISSING
    batch_size: int = MISSING
    batch_length: int = MISSING
    chunk: int = MISSING
    directory: str = MISSING
    storage: str = MISSING


@dataclass
class RSSMConfig:
    deter: int = MISSING
    hidden: int = MISSING
    stoch: int = MISSING
    classes: int = MISSING
    unimix: float = MISSING


@dataclass
class CoderConfig:
    """Encoder or decoder: CNN for images, MLP for vectors."""

    cnn_depth: int = MISSING
    mlp_units: int = MISSING
    mlp_layers: int = MISSING
    min_res: int = MISSING


@dataclass
class HeadConfig:
    units: int = MISSING
    layers: int = MISSING


@dataclass
class TwoHotConfig:
    bins: int = MISSING
    limit: float = MISSING


@dataclass
class WorldModelConfig:
    pred_scale: float = MISSING
    dyn_scale: float = MISSING
    rep_scale: float = MISSING
    free_nats: float = MISSING


@dataclass
class ActorConfig:
    units: int = MISSING
    layers: int = MISSING
    unimix: float = MISSING
    min_std: float = MISSING
    max_std: float = MISSING
    entropy: float = MISSING


@dataclass
class CriticConfig:
    units: int = MISSING
    layers: int = MISSING
    slow_rate: float = MISSING
    slow_reg: float = MISSING


@dataclass
class BehaviorConfig:
    horizon: int = MISSING
    discount_horizon: float = MISSING
    lam: float = MISSING
    return_decay: float = MISSING
    return_low: float = MISSING
    return_high: float = MISSING
    return_floor: float = MISSING


@dataclass
class OptimConfig:
    lr: float = MISSING
    eps: float = MISSING
    clip: float = MISSING


@dataclass
class OptimsConfig:
    world_model: OptimConfig = field(default_factory=OptimConfig)
    actor: OptimConfig = field(default_factory=OptimConfig)
    critic: OptimConfig = field(default_factory=OptimConfig)


@dataclass
class Config:
    env: str = MISSING
    size: str = MISSING
    seed: int = MISSING
    logdir: str = MISSING
    device: str = MISSING
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


# Command-line flags that are shorthands for config keys.
FLAG_KEYS = {
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


def _read_yaml(name: str) -> dict:
    return yaml.safe_load((config_dir() / name).read_text()) or {}


def sizes() -> dict[str, dict[str, int]]:
    """The size presets of `configs/sizes.yaml`, in file order (xs .. xl)."""
    return _read_yaml("sizes.yaml")


def suites() -> list[str]:
    """Env suites that have a config file (the part of `--env` before ':')."""
    names = [path.stem for path in config_dir().glob("*.yaml")]
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


def load_config(
    overrides: Sequence[str] = (), flags: Mapping[str, Any] | None = None
) -> Config:
    """Assemble the config from the YAML layers, `flags` (see FLAG_KEYS) and dotted `overrides`,
    which win over flags."""
    user = OmegaConf.create({})
    for name, value in (flags or {}).items():
        if value is None:
            continue
        if name not in FLAG_KEYS:
            raise ConfigError(f"unknown flag {name!r}; accepted: {', '.join(FLAG_KEYS)}")
        OmegaConf.update(user, FLAG_KEYS[name], value, force_add=True)
    user = OmegaConf.merge(user, _parse_overrides(overrides))

    defaults = _read_yaml("defaults.yaml")
    first = _merge(defaults, user)
    suite_file = _read_yaml(f"{suite_of(str(first.env))}.yaml")
    size = str(_merge(defaults, suite_file, user).size)
    presets = sizes()
    if size not in presets:
        raise ConfigError(f"unknown size {size!r}; accepted: {', '.join(presets)}")

    return _to_config(_merge(defaults, suite_file, {"dims": presets[size]}, user))


POSITIVE = (
    "run.steps", "run.envs", "run.log_every", "run.save_every", "run.max_nonfinite", "environment.repeat", "environment.size",
    "replay.capacity", "replay.batch_size", "replay.batch_length", "replay.chunk", "rssm.deter", "rssm.hidden",
    "rssm.stoch", "rssm.classes", "encoder.cnn_depth", "decoder.cnn_depth", "behavior.horizon",
    "imagine.sequences", "imagine.context", "imagine.scale", "imagine.fps",
)
NON_NEGATIVE = (
    "seed", "run.prefill", "run.eval_episodes", "run.video_every", "run.train_ratio", "environment.length",
    "environment.noops", "environment.timeout", "imagine.horizon",
)
UNIT_INTERVAL = (
    "environment.sticky", "rssm.unimix", "actor.unimix", "behavior.lam", "behavior.return_decay",
    "critic.slow_rate",
)


def _value(cfg: Config, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def validate(cfg: Config) -> None:
    """Range checks that types alone cannot express."""
    def bad(key: str, why: str) -> ConfigError:
        return ConfigError(f"bad value for config key {key!r}: {_value(cfg, key)} ({why})")

    for key in POSITIVE:
        if _value(cfg, key) <= 0:
            raise bad(key, "must be > 0")
    for key in NON_NEGATIVE:
        if _value(cfg, key) < 0:
            raise bad(key, "must be >= 0")
    for key in UNIT_INTERVAL:
        if not 0.0 <= _value(cfg, key) <= 1.0:
            raise bad(key, "must be in [0, 1]")
    if cfg.twohot.bins < 2:
        raise bad("twohot.bins", "must be >= 2")
    if cfg.replay.batch_length > cfg.replay.capacity // cfg.run.envs:
        raise ConfigError(
            f"bad value for config key 'replay.batch_length': {cfg.replay.batch_length} is longer than the "
            f"replay capacity per env ({cfg.replay.capacity} // {cfg.run.envs} envs)"
        )
    if cfg.run.prefill // cfg.run.envs < cfg.replay.batch_length:
        raise ConfigError(
            f"bad value for config key 'run.prefill': {cfg.run.prefill} leaves fewer than replay.batch_length = "
            f"{cfg.replay.batch_length} steps per env ({cfg.run.envs} envs) before training starts"
        )
    if not 0.0 <= cfg.behavior.return_low < cfg.behavior.return_high <= 1.0:
        raise ConfigError(
            f"bad value for config keys 'behavior.return_low/high': {cfg.behavior.return_low}, "
            f"{cfg.behavior.return_high} (need 0 <= low < high <= 1)"
        )
    if cfg.replay.storage not in ("memory", "disk"):
        raise bad("replay.storage", "accepted: memory, disk")
    if cfg.run.precision not in PRECISIONS:
        raise bad("run.precision", f"accepted: {', '.join(PRECISIONS)}")
    if cfg.run.compile not in COMPILE_SETTINGS:
        raise bad("run.compile", f"accepted: {', '.join(COMPILE_SETTINGS)}")
    if cfg.device not in ("auto", "cpu") and not cfg.device.startswith("cuda"):
        raise ConfigError(f"bad value for config key 'device': {cfg.device!r}; accepted: auto, cpu, cuda, cuda:N")


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
    """The resolved config as YAML (saved with every run)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def from_yaml(text: str) -> Config:
    """A config saved by `to_yaml` (e.g. inside a checkpoint), validated like any other."""
    return _to_config(_merge(yaml.safe_load(text)))


ARCHITECTURE = ("rssm", "encoder", "decoder", "reward_head", "cont_head", "twohot")


def identity(cfg: Config) -> dict[str, Any]:
    """What a checkpoint must share with the run that loads it: env and every network width."""
    out: dict[str, Any] = {"env": cfg.env, "size": cfg.size}
    for name in ARCHITECTURE:
        out.update({f"{name}.{k}": v for k, v in dataclasses.asdict(getattr(cfg, name)).items()})
    for name in ("actor", "critic"):
        part = getattr(cfg, name)
        out.update({f"{name}.units": part.units, f"{name}.layers": part.layers})
    return out
