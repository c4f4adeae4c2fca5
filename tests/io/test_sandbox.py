"""The loaders' shared policy: what an input may reference (facerig.io.sandbox), what it may cost
(LoadLimits, estimate_peak_bytes) and how deep its JSON may nest (facerig.safe_json). The refusals are
in test_hostile_corpus.py; here, that legitimate inputs still load and that the limits add up."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from pxr import Sdf, UsdUtils

from facerig.errors import BundleError, ConfigError, MeshLoadError
from facerig.io import LoadLimits, load_mesh
from facerig.io._common import TEXT_PARSE_BYTES_PER_BYTE, estimate_load_bytes, estimate_peak_bytes
from facerig.mesh import Mesh
from facerig.rig import Rig
from facerig.safe_json import MAX_JSON_DEPTH, JsonDepthError, json_depth, loads_bounded


def usd_layer(prim: str, offset: float, metadata: str = "", extra: str = "") -> str:
    """A layer defining /Root/<prim>, one triangle shifted by ``offset`` along x."""
    a, b = offset, offset + 1
    return f"""#usda 1.0
(
    defaultPrim = "Root"
{metadata})
def Xform "Root"
{{
    def Mesh "{prim}"
    {{
        point3f[] points = [({a}, 0, 0), ({b}, 0, 0), ({a}, 1, 0)]
        int[] faceVertexCounts = [3]
        int[] faceVertexIndices = [0, 1, 2]
    }}
{extra}}}
"""


def test_usd_composition_inside_the_folder_loads(tmp_path: Path) -> None:
    (tmp_path / "layers").mkdir()
    (tmp_path / "layers" / "sub.usda").write_text(usd_layer("FromSublayer", 10))
    (tmp_path / "part.usda").write_text(usd_layer("FromReference", 20))
    (tmp_path / "lazy.usda").write_text(usd_layer("FromPayload", 30))
    arcs = (
        '    def Xform "Ref" (\n        references = @./part.usda@</Root>\n    )\n    {\n    }\n'
        '    def Xform "Pay" (\n        payload = @./lazy.usda@</Root>\n    )\n    {\n    }\n'
        '    def Shader "Skin"\n    {\n        asset inputs:file = @../textures/skin.png@\n    }\n'
    )  # a texture outside the folder is not composed, so it is no reason to refuse
    root = tmp_path / "head.usda"
    root.write_text(usd_layer("Own", 0, '    subLayers = [@./layers/sub.usda@]\n', arcs))
    mesh = load_mesh(root)
    assert set(mesh.group_names) == {"Own", "FromSublayer", "FromReference", "FromPayload"}
    assert mesh.n_vertices == 12
    np.testing.assert_allclose(sorted(set(mesh.vertices[:, 0])), [0, 1, 10, 11, 20, 21, 30, 31])


def test_usdz_package_with_its_own_sublayer_loads(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "sub.usda").write_text(usd_layer("Inner", 5))
    (source / "head.usda").write_text(usd_layer("Own", 0, '    subLayers = [@./sub.usda@]\n'))
    package = tmp_path / "pkg" / "head.usdz"
    package.parent.mkdir()
    assert UsdUtils.CreateNewUsdzPackage(Sdf.AssetPath(str(source / "head.usda")), str(package))
    mesh = load_mesh(package)
    assert set(mesh.group_names) == {"Own", "Inner"}


def test_usd_layers_count_against_the_file_limit(tmp_path: Path) -> None:
    (tmp_path / "sub.usda").write_text(usd_layer("Sub", 3) + " " * 4000)
    root = tmp_path / "head.usda"
    root.write_text(usd_layer("Own", 0, '    subLayers = [@./sub.usda@]\n'))
    total = root.stat().st_size + (tmp_path / "sub.usda").stat().st_size
    assert load_mesh(root, LoadLimits(max_file_bytes=total)).n_vertices == 6
    with pytest.raises(MeshLoadError, match=r"layer './sub.usda' .* over the limit") as info:
        load_mesh(root, LoadLimits(max_file_bytes=total - 1))
    assert info.value.path == root


def gltf_with_buffers(folder: Path, uris: list[str]) -> Path:
    """A glTF whose primitive k reads its triangle from buffer k (file ``uris[k]``, 36 bytes each)."""
    n = len(uris)
    document = {
        "asset": {"version": "2.0"},
        "buffers": [{"uri": uri, "byteLength": 36} for uri in uris],
        "bufferViews": [{"buffer": k, "byteLength": 36} for k in range(n)],
        "accessors": [{"bufferView": k, "componentType": 5126, "count": 3, "type": "VEC3"} for k in range(n)],
        "meshes": [{"name": "tri", "primitives": [{"attributes": {"POSITION": k}} for k in range(n)]}],
        "nodes": [{"name": "n", "mesh": 0}],
        "scenes": [{"nodes": [0]}],
    }
    path = folder / "head.gltf"
    path.write_text(json.dumps(document))
    return path


def test_gltf_buffer_in_a_subfolder_loads_and_every_reference_counts(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tri.bin").write_bytes(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], "<f4").tobytes())
    path = gltf_with_buffers(tmp_path, ["bin/tri.bin"] * 3)
    assert load_mesh(path).n_vertices == 9
    total = path.stat().st_size + 3 * 36
    assert load_mesh(path, LoadLimits(max_file_bytes=total)).n_vertices == 9
    with pytest.raises(MeshLoadError, match=r"buffer 2 \(bin/tri.bin\): .* reaches"):
        load_mesh(path, LoadLimits(max_file_bytes=total - 1))


def test_default_limits_fit_the_default_memory_budget() -> None:
    limits = LoadLimits()
    # A triangle mesh has about two faces, six corners, per vertex: the densest common layout.
    assert estimate_peak_bytes(limits.max_vertices, 6 * limits.max_vertices) <= limits.max_memory_bytes
    # The former default, 2,000,000 vertices, did not fit: its rig alone holds 96 float32 deltas per vertex twice.
    assert estimate_peak_bytes(2_000_000, 12_000_000) > 2 * limits.max_memory_bytes


@pytest.mark.parametrize("field, value", [
    ("max_vertices", 0), ("max_file_bytes", -1), ("max_memory_bytes", float("inf")), ("max_file_bytes", 1.5),
])  # fmt: skip
def test_invalid_limits_are_config_errors(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"LoadLimits.{field} must be a positive whole number"):
        LoadLimits(**{field: value})


def test_memory_budget_refuses_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "grid.obj"
    n = 40
    x, y = np.meshgrid(np.arange(n), np.arange(n))
    lines = [f"v {a} {b} 0" for a, b in zip(x.ravel(), y.ravel())]
    lines += [f"f {i + 1} {i + 2} {i + n + 2}" for i in range(n * (n - 1)) if (i + 1) % n]
    path.write_text("\n".join(lines) + "\n")
    assert load_mesh(path).n_vertices == n * n
    with pytest.raises(MeshLoadError, match="over the memory budget of 1 MiB"):
        load_mesh(path, LoadLimits(max_memory_bytes=2**20))


def test_bundle_is_checked_against_the_limits(tmp_path: Path) -> None:
    mesh = Mesh(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float), np.array([3]), np.array([0, 1, 2]))
    rig = Rig(mesh, ("JawDrop", "JawDrop_x2"), np.ones((2, 3, 3), np.float32), {"JawDrop_x2": ("JawDrop", "JawDrop")})
    path = rig.save(tmp_path / "tri.facerig.npz")
    back = Rig.load(path)
    np.testing.assert_array_equal(back.deltas, rig.deltas)
    assert back.corrective_recipes == {"JawDrop_x2": ("JawDrop", "JawDrop")}
    with pytest.raises(BundleError, match="over the memory budget of 100"):
        Rig.load(path, LoadLimits(max_memory_bytes=100))
    with pytest.raises(BundleError, match="3 vertices, over the limit of 2"):
        Rig.load(path, LoadLimits(max_vertices=2))


def test_json_depth_ignores_brackets_inside_strings() -> None:
    assert json_depth('{"a": "[[[[{{{{", "b": [1, [2, "]]]]"]]}') == 3
    assert json_depth('"no containers"') == 0
    assert json_depth(r'["escaped \" [[[ quote"]') == 1
    at_limit = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert json_depth(loads_bounded(at_limit) and at_limit) == MAX_JSON_DEPTH
    with pytest.raises(JsonDepthError, match=f"{MAX_JSON_DEPTH + 1} levels deep"):
        loads_bounded("[" + at_limit + "]")


@pytest.mark.parametrize("name, parse_bytes_per_byte", [
    ("spot.obj", TEXT_PARSE_BYTES_PER_BYTE), ("suzanne.obj", TEXT_PARSE_BYTES_PER_BYTE), ("robot_expressive.glb", 1),
])  # fmt: skip
def test_memory_estimate_bounds_what_loading_takes(heads_dir: Path, name: str, parse_bytes_per_byte: int) -> None:
    path = heads_dir / name
    load_mesh(path)  # first-use imports and caches are not the file's cost
    tracemalloc.start()
    try:
        mesh = load_mesh(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    parse_bytes = path.stat().st_size * parse_bytes_per_byte
    estimate = estimate_load_bytes(mesh.n_vertices, len(mesh.face_vertex_indices), parse_bytes)
    assert peak <= estimate, f"{name}: loading took {peak:,} bytes, estimated {estimate:,}"
    assert estimate < 3 * peak  # and stays an estimate, not a blanket refusal
