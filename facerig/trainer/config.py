"""Training configuration: one frozen dataclass per concern, resolved from defaults, a TOML file and the CLI.

A config file has the tables ``[run]``, ``[data]``, ``[network]``, ``[stage1]`` and ``[stage2]`` (each
optional; ``[stageN.weights]`` overrides loss weights). Every key must be a field below with a value of the
field's type, or :func:`load_config` raises :class:`~facerig.errors.ConfigError` naming the file and key.
Precedence: CLI overrides (``stage1.epochs=3``) > file > the defaults written here. Presets live in
``configs/*.toml`` and hold only their differences from these defaults.

The resolved :class:`TrainConfig` (:meth:`TrainConfig.to_dict`) is written into every checkpoint and into the
exported model's metadata.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence

from facerig.errors import ConfigError
from facerig.nn.network import NetworkConfig
from facerig.trainer.losses import STAGE1_WEIGHTS, STAGE2_OPTIONAL, STAGE2_WEIGHTS

STAGES = ("stage1", "stage2")
HEADS = ("all", "rigged")
NETWORK_PRESETS = {"default": NetworkConfig.default, "paper": NetworkConfig.paper}


@dataclass(frozen=True)
class RunConfig:
    """Where a run writes, which stages it runs, and how often it reports."""

    out_dir: str = "runs/facerig"  # checkpoints/, metrics.csv, tensorboard/ and model/ go here
    name: str = "facerig"  # the exported model's name
    stages: tuple[str, ...] = STAGES  # run these, in this order; stage2 starts from stage1's final weights
    seed: int = 0  # each process seeds with seed + rank
    device: str = "auto"  # auto, cpu or cuda; under torchrun CUDA ranks use cuda:LOCAL_RANK
    threads: int = 0  # torch CPU threads per process; 0 leaves torch's default
    checkpoint_every: int = 1000  # optimizer steps between checkpoints (plus one at each stage's end)
    export: bool = True  # write the TorchScript model (model/) after the last stage


@dataclass(frozen=True)
class DataConfig:
    """The dataset and the source of 2D targets for heads without a rig."""

    dataset: str = ""  # dataset folder (manifest.json + samples)
    split: str = "train"  # manifest split to train on
    targets: str = "transfer"  # unrigged 2D targets: "transfer" (built in) or a folder for DiskTargets
    eig_max_vertices: int = 0  # operators: approximate eigenpairs above this many vertices; 0 = exact
    # Per source ("ict", "makehuman"; a manifest entry's "source"): how many times each of its heads is drawn per
    # epoch. 1 when absent; 2 = twice; 0.5 = a seeded half of them (a new half each stage); 0 leaves the source out.
    source_weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    # Per source: train on only this many of its identities (a seeded choice; a sample blended with an identity
    # left out is left out too). Measures how many of a studio's own rigs a fine-tune needs; absent = all.
    identities: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class StageConfig:
    """One training stage. Stage 1 defaults to the seed's 2D-only regime, stage 2 to its 2D + 3D fine-tuning."""

    epochs: int = 15  # passes over the stage's heads
    max_steps: int = 0  # > 0 stops the stage after this many optimizer steps (smoke runs); 0 = epochs decide
    heads: str = "all"  # "all" (rigged + unrigged) or "rigged"
    lr: float = 1e-4  # Adam base rate
    warmup_steps: int = 2500  # linear warm-up in optimizer steps (see configs/paper-stage1.toml on 20,000)
    eta_min: float = 1e-8  # the cosine's floor
    grad_clip: float = 0.0  # max global gradient norm; 0 = no clipping
    poses_per_step: int = 8  # poses drawn per step from the head's labelled poses (bounds CPU cost)
    rendered_poses: int = 0  # of those, how many the 2D terms render (rendering dominates a CPU step); 0 = all
    image_size: int = 256  # square render resolution in pixels
    fov_degrees: float = 20.0  # vertical field of view of the frontal camera
    sigma: float = 1.0  # soft-silhouette blur, square pixels
    pose_balance: float = 0.0  # 3D terms: 0 = each pose counts by its size, 1 = by its relative error (losses.pose_balance_weights)
    init: str = ""  # weights to start from: a checkpoint .pt or a packaged model folder; "" = stage1's final for stage2, fresh for stage1
    weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType(dict(STAGE1_WEIGHTS)))


def _stage2_defaults() -> StageConfig:
    return StageConfig(epochs=20, heads="rigged", weights=MappingProxyType(dict(STAGE2_WEIGHTS)))


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs."""

    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig.default)
    stage1: StageConfig = field(default_factory=StageConfig)
    stage2: StageConfig = field(default_factory=_stage2_defaults)

    def stage(self, name: str) -> StageConfig:
        return {"stage1": self.stage1, "stage2": self.stage2}[name]

    def to_dict(self) -> dict[str, Any]:
        """JSON/TOML-ready nested dict (the inverse of :func:`config_from_dict`)."""
        out: dict[str, Any] = {}
        for section in dataclasses.fields(self):
            value = getattr(self, section.name)
            if isinstance(value, NetworkConfig):
                out[section.name] = value.to_dict()
                continue
            table = {}
            for f in dataclasses.fields(value):
                item = getattr(value, f.name)
                table[f.name] = list(item) if isinstance(item, tuple) else dict(item) if isinstance(item, Mapping) else item
            out[section.name] = table
        return out


# --------------------------------------------------------------------------------------------- resolving
def load_config(path: str | Path | None = None, overrides: Mapping[str, str] | None = None) -> TrainConfig:
    """Resolve a :class:`TrainConfig`: ``overrides`` > the TOML file at ``path`` > defaults.

    Args:
        path: a TOML file, or None for the defaults. Relative paths in it are taken from the current
            directory (presets assume the repository root), as on the command line.
        overrides: dotted keys to values as typed on a command line, e.g. ``{"stage1.epochs": "3"}``;
            values are read as TOML literals (``3``, ``1e-4``, ``true``, ``["stage2"]``), else as strings.

    Raises:
        ConfigError: unreadable TOML, an unknown table or key, or a value of the wrong type.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"cannot read config: {error}", path) from None
    for key, text in (overrides or {}).items():
        *tables, name = key.split(".")
        if not tables or not name:
            raise ConfigError(f"override {key!r} must be table.key, e.g. stage1.epochs")
        node = data
        for table in tables:
            node = node.setdefault(table, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r}: {table!r} is not a table")
        node[name] = _parse_literal(text)
    return config_from_dict(data, source=path)


def config_from_dict(data: Mapping[str, Any], source: str | Path | None = None) -> TrainConfig:
    """Build a :class:`TrainConfig` from nested tables; missing keys keep their defaults.

    Raises:
        ConfigError: unknown tables or keys, wrong types, or values out of range.
    """
    sections = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(data) - sections
    if unknown:
        raise ConfigError(f"unknown config tables {sorted(unknown)}; known: {sorted(sections)}", source)
    defaults = TrainConfig()
    network_table = dict(data.get("network", {}))
    preset = network_table.pop("preset", "default")
    if preset not in NETWORK_PRESETS:
        raise ConfigError(f"network.preset must be one of {sorted(NETWORK_PRESETS)}, got {preset!r}", source)
    config = TrainConfig(
        run=_build(RunConfig, defaults.run, data.get("run", {}), "run", source),
        data=_build(DataConfig, defaults.data, data.get("data", {}), "data", source),
        network=_build(NetworkConfig, NETWORK_PRESETS[preset](), network_table, "network", source),
        stage1=_build(StageConfig, defaults.stage1, data.get("stage1", {}), "stage1", source),
        stage2=_build(StageConfig, defaults.stage2, data.get("stage2", {}), "stage2", source),
    )
    _validate(config, source)
    return config


def _build(cls: type, base: Any, table: Any, section: str, source: str | Path | None) -> Any:
    """``base`` with the fields in ``table`` replaced, each checked against ``cls``'s annotations."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"[{section}] must be a table", source)
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    changes = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"unknown key {section}.{key}; known: {sorted(known)}", source)
        changes[key] = _typed(value, hints[key], f"{section}.{key}", source)
    if section.startswith("stage") and "weights" in changes:
        changes["weights"] = MappingProxyType({**base.weights, **changes["weights"]})
    try:
        return dataclasses.replace(base, **changes)
    except ConfigError as error:  # NetworkConfig's own range checks
        raise ConfigError(error.reason, source) from None


def _typed(value: Any, hint: Any, key: str, source: str | Path | None) -> Any:
    """``value`` checked (and, for tuples and int -> float, converted) against the field type ``hint``."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key} must be a list of strings, got {value!r}", source)
        return tuple(value)
    if origin is not None and issubclass(origin, Mapping):
        if not isinstance(value, Mapping) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()
        ):
            raise ConfigError(f"{key} must be a table of numbers, got {value!r}", source)
        return {str(k): float(v) for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{key} must be {hint.__name__}, got {type(value).__name__} {value!r}", source)
    return value


def _validate(config: TrainConfig, source: str | Path | None) -> None:
    run = config.run
    if not run.stages or any(s not in STAGES for s in run.stages) or list(run.stages) != sorted(set(run.stages)):
        raise ConfigError(f"run.stages must be stage1 and/or stage2 in that order, got {list(run.stages)}", source)
    if run.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"run.device must be auto, cpu or cuda, got {run.device!r}", source)
    if run.checkpoint_every < 1 or run.threads < 0:
        raise ConfigError("run.checkpoint_every must be >= 1 and run.threads >= 0", source)
    if any(w < 0 for w in config.data.source_weights.values()):
        raise ConfigError(f"data.source_weights must be >= 0, got {dict(config.data.source_weights)}", source)
    if any(n < 1 or n != int(n) for n in config.data.identities.values()):
        raise ConfigError(f"data.identities must be whole numbers >= 1, got {dict(config.data.identities)}", source)
    allowed_weights = {"stage1": set(STAGE1_WEIGHTS), "stage2": set(STAGE2_WEIGHTS) | set(STAGE2_OPTIONAL)}
    for name in STAGES:
        stage = config.stage(name)
        if stage.epochs < 1 or stage.max_steps < 0 or stage.poses_per_step < 1 or stage.image_size < 8:
            raise ConfigError(f"{name} needs epochs >= 1, max_steps >= 0, poses_per_step >= 1, image_size >= 8", source)
        if stage.rendered_poses < 0:
            raise ConfigError(f"{name}.rendered_poses must be >= 0 (0 renders every drawn pose)", source)
        if not 0 <= stage.pose_balance <= 1:
            raise ConfigError(f"{name}.pose_balance must be in [0, 1], got {stage.pose_balance}", source)
        if not (stage.lr > 0 and 0 <= stage.eta_min < stage.lr and stage.warmup_steps >= 0 and stage.grad_clip >= 0):
            raise ConfigError(f"{name} needs lr > 0, 0 <= eta_min < lr, warmup_steps >= 0, grad_clip >= 0", source)
        if stage.heads not in HEADS:
            raise ConfigError(f"{name}.heads must be one of {HEADS}, got {stage.heads!r}", source)
        if name == "stage2" and stage.heads != "rigged":
            raise ConfigError("stage2.heads must be \"rigged\": its 3D loss needs ground truth", source)
        unknown = set(stage.weights) - allowed_weights[name]
        if unknown:
            raise ConfigError(f"{name}.weights has unknown losses {sorted(unknown)}; known: {sorted(allowed_weights[name])}", source)
    if "stage1" not in run.stages and "stage2" in run.stages and not config.stage2.init:
        raise ConfigError("a run of stage2 alone needs stage2.init (stage 1's final checkpoint)", source)


def _parse_literal(text: str) -> Any:
    """A command-line value as a TOML literal (``3``, ``1e-4``, ``true``, ``["a"]``), else the raw string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def parse_overrides(args: Sequence[str]) -> dict[str, str]:
    """Command-line overrides to a dict: ``--stage1.epochs 3``, ``--stage1.epochs=3`` or ``stage1.epochs=3``.

    Raises:
        ConfigError: a word that is not an override, or a ``--key`` without a value.
    """
    overrides: dict[str, str] = {}
    words = list(args)
    while words:
        word = words.pop(0)
        key, has_value, value = word.removeprefix("--").partition("=")
        if not has_value:
            if not word.startswith("--") or not words:
                raise ConfigError(f"cannot read override {word!r}; use --table.key value or table.key=value")
            value = words.pop(0)
        if "." not in key:
            raise ConfigError(f"override {word!r} must name table.key, e.g. --stage1.epochs 3")
        overrides[key] = value
    return overrides
