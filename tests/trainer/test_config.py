"""Training config: defaults, TOML file, CLI overrides (in that order of precedence), and strict checking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facerig.errors import ConfigError
from facerig.nn.network import NetworkConfig
from facerig.trainer.config import TrainConfig, config_from_dict, load_config, parse_overrides

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_seed_regime() -> None:
    config = load_config()
    assert (config.stage1.epochs, config.stage2.epochs) == (15, 20)
    assert config.stage1.lr == config.stage2.lr == 1e-4
    assert dict(config.stage1.weights) == {"image": 10.0, "mask": 1.0, "displacement_2d": 1.0, "regularization": 0.0001}
    assert dict(config.stage2.weights) == {"image": 10.0, "mask": 1.0, "mse_3d": 100.0, "landmark_2d": 0.5,
                                           "eye_closure_2d": 0.5}
    assert (config.stage1.heads, config.stage2.heads) == ("all", "rigged")
    assert config.network == NetworkConfig.default()


def test_cli_beats_file_beats_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, '[stage1]\nepochs = 3\nlr = 2e-4\n[network]\npreset = "paper"\nwidth = 64\n')
    config = load_config(path, parse_overrides(["--stage1.epochs", "5", "--run.stages=[\"stage1\"]"]))
    assert config.stage1.epochs == 5  # CLI
    assert config.stage1.lr == 2e-4  # file
    assert config.stage1.poses_per_step == 8  # default
    assert config.network.width == 64 and config.network.n_blocks == NetworkConfig.paper().n_blocks
    assert config.run.stages == ("stage1",)


def test_weights_table_overrides_single_terms(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "[stage2.weights]\nmse_3d = 50\n"))
    assert config.stage2.weights["mse_3d"] == 50.0 and config.stage2.weights["image"] == 10.0
    extra = load_config(_write(tmp_path, "[stage2.weights]\nepe_3d = 5\n"))  # a term beyond the seed's
    assert extra.stage2.weights["epe_3d"] == 5.0 and extra.stage2.weights["mse_3d"] == 100.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[stage1]\nepoch = 3\n", "unknown key stage1.epoch"),
        ("[stage3]\nepochs = 3\n", "unknown config tables"),
        ("[stage1]\nepochs = \"3\"\n", "stage1.epochs must be int"),
        ("[stage1]\nepochs = 2.5\n", "stage1.epochs must be int"),
        ("[run]\nexport = 1\n", "run.export must be bool"),
        ("[stage1]\nlr = true\n", "stage1.lr must be float"),
        ("[stage1.weights]\nmse_3d = 1.0\n", "unknown losses"),
        ("[stage1.weights]\nepe_3d = 1.0\n", "unknown losses"),
        ("[stage2]\nrendered_poses = -1\n", "rendered_poses must be >= 0"),
        ("[stage2]\npose_balance = 1.5\n", "stage2.pose_balance must be in \\[0, 1\\]"),
        ("[stage2]\nheads = \"all\"\n", "stage2.heads must be"),
        ("[run]\nstages = [\"stage2\", \"stage1\"]\n", "run.stages"),
        ("[run]\nstages = [\"stage2\"]\n", "stage2.init"),
        ("[network]\npreset = \"huge\"\n", "network.preset"),
        ("[network]\nwidth = 0\n", "width must be at least 1"),
        ("[stage1\n", "cannot read config"),
    ],
)
def test_bad_files_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as raised:
        load_config(path)
    assert str(path) in str(raised.value)


def test_int_is_accepted_for_float_and_values_parse_as_toml() -> None:
    config = load_config(None, parse_overrides(["stage1.lr=1", "--run.name", "my rig", "--run.export", "false"]))
    assert config.stage1.lr == 1.0 and isinstance(config.stage1.lr, float)
    assert config.run.name == "my rig" and config.run.export is False


@pytest.mark.parametrize("args", [["stage1.epochs"], ["--stage1.epochs"], ["--epochs", "3"], ["epochs=3"]])
def test_malformed_overrides_are_rejected(args: list[str]) -> None:
    with pytest.raises(ConfigError):
        parse_overrides(args)


def test_to_dict_round_trips_through_json() -> None:
    config = load_config(CONFIGS / "cpu.toml")
    again = config_from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config


@pytest.mark.parametrize("name", ["tiny.toml", "cpu.toml", "paper-stage1.toml", "paper-stage2.toml"])
def test_presets_load(name: str) -> None:
    config = load_config(CONFIGS / name)
    assert isinstance(config, TrainConfig)


def test_paper_presets_follow_the_seed() -> None:
    stage1, stage2 = load_config(CONFIGS / "paper-stage1.toml"), load_config(CONFIGS / "paper-stage2.toml")
    assert stage1.run.stages == ("stage1",) and stage2.run.stages == ("stage2",)
    assert stage1.stage1.epochs == 15 and stage2.stage2.epochs == 20
    assert stage1.network == stage2.network == NetworkConfig.paper()
    # stage 2 starts from the checkpoint stage 1 writes at its end
    assert Path(stage2.stage2.init) == Path(stage1.run.out_dir) / "checkpoints" / "stage1-final.pt"
    assert stage1.stage1.image_size == stage2.stage2.image_size == 512  # the seed's res=(512, 512)
