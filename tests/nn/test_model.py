"""Packaged models: save/load round trip, loading without the network code, integrity errors, predict, devices."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from facerig.errors import ConfigError, ModelError
from facerig.nn.model import FORMAT_VERSION, PackagedModel, fresh_model, save_packaged, select_device
from facerig.nn.network import NetworkConfig, RigNetwork
from facerig.nn.operators import compute_operators
from test_network import bumpy_sphere

ACTIONS = [f"action_{i:02d}" for i in range(47)]
SMALL = NetworkConfig(width=16, n_blocks=2, k_eig=24, global_width=16, global_dim=8, n_hks=4)


def mesh_vertices64() -> np.ndarray:
    return bumpy_sphere(seed=7)[0]


@pytest.fixture(scope="module")
def mesh():
    """(V, 3) float32 vertices, triangles and the operators of the float64 original."""
    vertices, triangles = bumpy_sphere(seed=7)
    return vertices.astype(np.float32), triangles, compute_operators(vertices, triangles, SMALL.k_eig)


@pytest.fixture(scope="module")
def acts() -> np.ndarray:
    values = np.random.default_rng(0).uniform(0, 1, (11, 47)).astype(np.float32)
    values[0] = 0.0
    return values


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Path, RigNetwork]:
    torch.manual_seed(0)
    network = RigNetwork(dataclasses.replace(SMALL, output_init_std=0.1))
    metadata = {
        "action_names": ACTIONS,
        "name": "unit-test",
        "canonical_frame": {"head_size": 1.0},
        "training": {"stage": 2, "steps": 0},
    }
    return save_packaged(network, tmp_path / "model", metadata), network


def test_save_then_load_round_trip(saved, mesh, acts):
    directory, network = saved
    vertices, _, operators = mesh
    model = PackagedModel.load(directory)

    document = json.loads((directory / "model.json").read_text())
    assert document["model_id"] == hashlib.sha256((directory / "model.pt").read_bytes()).hexdigest()
    assert model.model_id == document["model_id"]
    assert document["format_version"] == FORMAT_VERSION
    assert document["vocabulary"]["action_names"] == ACTIONS
    assert document["canonical_frame"] == {"head_size": 1.0} and document["training"]["stage"] == 2
    assert NetworkConfig.from_dict(document["network"]["config"]) == network.config
    assert model.k_eig == SMALL.k_eig and model.action_names == tuple(ACTIONS) and model.name == "unit-test"
    assert sorted(p.name for p in directory.iterdir()) == ["model.json", "model.pt", "weights.pt"]  # no temp files
    assert model.format == "weights"

    predicted = model.predict(vertices, operators, acts)
    with torch.no_grad():
        expected = network(torch.from_numpy(vertices), operators.to_torch(), torch.from_numpy(acts)).numpy()
    assert predicted.dtype == np.float32 and predicted.shape == (len(acts), len(vertices), 3)
    np.testing.assert_allclose(predicted, expected, atol=1e-6, rtol=0)
    # A .pt path works as well as the directory, and TorchScript computes what the weights do.
    from_pt = PackagedModel.load(directory / "model.pt")
    np.testing.assert_array_equal(from_pt.predict(vertices, operators, acts), predicted)
    scripted = PackagedModel.load(directory, prefer="torchscript")
    assert scripted.format == "torchscript"
    np.testing.assert_allclose(scripted.predict(vertices, operators, acts), predicted, atol=1e-6, rtol=0)


def test_bundled_model_formats_agree(mesh, acts):
    """The bundled model ships both formats; the loader prefers the plain weights, and they are the same net."""
    from facerig.nn.model import default_model_path

    weights = PackagedModel.load(default_model_path())
    scripted = PackagedModel.load(default_model_path(), prefer="torchscript")
    assert weights.format == "weights" and scripted.format == "torchscript"
    assert weights.model_id == scripted.model_id
    vertices, triangles, _ = mesh
    operators = compute_operators(mesh_vertices64(), triangles, weights.k_eig)
    vocabulary_acts = np.eye(len(weights.action_names), dtype=np.float32)[:6]
    np.testing.assert_allclose(weights.predict(vertices, operators, vocabulary_acts),
                               scripted.predict(vertices, operators, vocabulary_acts), atol=1e-6, rtol=0)


def test_corrupt_or_missing_weights_are_model_errors(saved):
    directory, _ = saved
    payload = bytearray((directory / "weights.pt").read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    (directory / "weights.pt").write_bytes(bytes(payload))
    with pytest.raises(ModelError, match="weights.pt does not match"):
        PackagedModel.load(directory)
    assert PackagedModel.load(directory, prefer="torchscript").format == "torchscript"
    (directory / "weights.pt").unlink()
    with pytest.raises(ModelError, match="weights.pt is missing"):
        PackagedModel.load(directory)
    with pytest.raises(ConfigError, match="unknown model format"):
        PackagedModel.load(directory, prefer="onnx")


@pytest.mark.slow  # a child Python process importing torch
def test_loads_and_predicts_without_the_network_module(saved, mesh, acts, tmp_path):
    directory, _ = saved
    vertices, triangles, operators = mesh
    expected = PackagedModel.load(directory).predict(vertices, operators, acts)
    np.savez(tmp_path / "inputs.npz", vertices=vertices, triangles=triangles, acts=acts, exact=mesh_vertices64())
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["facerig.nn.network"] = None  # any import of it now raises ImportError
        import numpy as np
        from facerig.nn.model import PackagedModel
        from facerig.nn.operators import compute_operators
        data = np.load({str(tmp_path / "inputs.npz")!r})
        operators = compute_operators(data["exact"], data["triangles"], {SMALL.k_eig})
        model = PackagedModel.load({str(directory)!r}, prefer="torchscript")
        np.save({str(tmp_path / "out.npy")!r}, model.predict(data["vertices"], operators, data["acts"]))
        try:
            import facerig.nn.network
        except ImportError:
            print("network blocked")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "network blocked" in result.stdout
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-6, rtol=0)


def test_missing_files_are_model_errors(saved, tmp_path):
    directory, _ = saved
    with pytest.raises(ModelError, match="model.pt is missing"):
        PackagedModel.load(tmp_path / "nowhere")
    (directory / "model.json").unlink()
    with pytest.raises(ModelError, match="model.json is missing"):
        PackagedModel.load(directory)


def test_corrupt_model_file_is_detected(saved):
    directory, _ = saved
    payload = bytearray((directory / "model.pt").read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    (directory / "model.pt").write_bytes(bytes(payload))
    with pytest.raises(ModelError, match="corrupt model") as error:
        PackagedModel.load(directory, prefer="torchscript")
    assert error.value.path == directory / "model.pt"


def test_hash_matching_but_unloadable_archive_is_a_model_error(saved):
    directory, _ = saved
    junk = b"not a torchscript archive"
    (directory / "model.pt").write_bytes(junk)
    document = json.loads((directory / "model.json").read_text())
    document["model_id"] = hashlib.sha256(junk).hexdigest()
    (directory / "model.json").write_text(json.dumps(document))
    with pytest.raises(ModelError, match="cannot load the TorchScript network"):
        PackagedModel.load(directory, prefer="torchscript")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format_version=FORMAT_VERSION + 1), "newer facerig"),
        (lambda d: d.update(format="something-else"), "not a facerig model"),
        (lambda d: d["vocabulary"]["action_names"].pop(), "do not match the network's n_actions"),
        (lambda d: d["network"].pop("config"), "missing the field"),
    ],
)
def test_bad_metadata_is_a_model_error(saved, edit, message):
    directory, _ = saved
    document = json.loads((directory / "model.json").read_text())
    edit(document)
    (directory / "model.json").write_text(json.dumps(document))
    with pytest.raises(ModelError, match=message):
        PackagedModel.load(directory)


def test_unparsable_metadata_is_a_model_error(saved):
    directory, _ = saved
    (directory / "model.json").write_text("{ not json")
    with pytest.raises(ModelError, match="unreadable model metadata"):
        PackagedModel.load(directory)


def test_save_rejects_metadata_that_does_not_fit_the_network(tmp_path):
    network = RigNetwork(SMALL)
    with pytest.raises(ModelError, match="47 distinct actions"):
        save_packaged(network, tmp_path / "m", {"action_names": ACTIONS[:46]})
    with pytest.raises(ModelError, match="unknown model metadata keys"):
        save_packaged(network, tmp_path / "m", {"action_names": ACTIONS, "learning_rate": 1e-4})
    assert not (tmp_path / "m" / "model.pt").exists()


def test_chunked_predict_equals_one_pass_and_accepts_operator_dicts(mesh, acts):
    vertices, _, operators = mesh
    model = fresh_model(SMALL, seed=3, action_names=ACTIONS, output_init_std=0.1)
    whole = model.predict(vertices, operators, acts, chunk_size=len(acts))
    assert np.abs(whole).mean() > 0.01
    for chunk in (1, 4, None):
        np.testing.assert_allclose(model.predict(vertices, operators, acts, chunk_size=chunk), whole, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(model.predict(vertices, operators.to_torch(), acts, chunk_size=len(acts)), whole)


def test_predict_rejects_mismatched_inputs(mesh, acts):
    vertices, _, operators = mesh
    model = fresh_model(SMALL, action_names=ACTIONS)
    with pytest.raises(ModelError, match=r"activations must be \(B, 47\)"):
        model.predict(vertices, operators, acts[:, :40])
    with pytest.raises(ModelError, match="operators are for"):
        model.predict(vertices[:-1], operators, acts)
    with pytest.raises(ModelError, match="eigenpairs"):
        model.predict(vertices, compute_operators(vertices.astype(np.float64), mesh[1], 8), acts)


def test_chunk_size_bounds_memory_at_full_ict_resolution():
    model = fresh_model(action_names=ACTIONS)
    per_vertex_pose = model.metadata["network"]["bytes_per_vertex_pose"]
    chunk = model.chunk_size(26_719, 96)
    assert 1 <= chunk < 96
    assert chunk * 26_719 * per_vertex_pose < 2**31  # well under 2 GB of activations
    assert model.chunk_size(100, 3) == 3  # never more than asked for


def test_fresh_model_is_seeded_and_leaves_the_global_rng_alone(mesh, acts):
    vertices, _, operators = mesh
    state = torch.random.get_rng_state()
    first = fresh_model(SMALL, seed=1, action_names=ACTIONS, output_init_std=0.1)
    assert torch.equal(torch.random.get_rng_state(), state)
    again = fresh_model(SMALL, seed=1, action_names=ACTIONS, output_init_std=0.1)
    other = fresh_model(SMALL, seed=2, action_names=ACTIONS, output_init_std=0.1)
    out = first.predict(vertices, operators, acts)
    np.testing.assert_array_equal(again.predict(vertices, operators, acts), out)
    assert not np.allclose(other.predict(vertices, operators, acts), out, atol=1e-3)
    assert first.config["output_init_std"] == 0.1 and first.n_parameters > 0


def test_align_activations_reorders_and_zero_fills():
    model = fresh_model(SMALL, action_names=ACTIONS)
    given = np.array([[0.5, 0.25]], np.float32)
    aligned = model.align_activations(given, ["action_10", "action_03"])
    expected = np.zeros((1, 47), np.float32)
    expected[0, 10], expected[0, 3] = 0.5, 0.25
    np.testing.assert_array_equal(aligned, expected)
    with pytest.raises(ModelError, match="does not know the actions"):
        model.align_activations(given, ["action_10", "JawDrop"])


def test_select_device():
    assert select_device("cpu") == torch.device("cpu")
    mps = hasattr(torch.backends, "mps") and torch.backends.mps.is_available()
    expected = "cuda" if torch.cuda.is_available() else "mps" if mps else "cpu"
    assert select_device("auto") == torch.device(expected)
    assert select_device("CPU") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="not available"):
            select_device("cuda")
    with pytest.raises(ConfigError, match="unknown device"):
        select_device("tpu")
