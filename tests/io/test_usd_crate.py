"""Binary USD (crate) layers: the declared length of every array is read from the file's headers, as USD lays
them out, and checked before USD allocates it (facerig.io._crate). The layers are written by pxr itself."""

from __future__ import annotations

import struct
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from pxr import Gf, Sdf, Usd, UsdGeom, Vt

from facerig.errors import MeshLoadError
from facerig.io import LoadLimits, load_mesh
from facerig.io._crate import crate_arrays


def arrays_of_every_kind(path: Path) -> list[tuple[str, int]]:
    """A crate layer holding arrays wherever USD keeps values (attribute defaults, time samples, variants,
    prim custom data nested in dictionaries, a reference's custom data) in each storage USD chooses (plain,
    integer-coded, floats as ints or as a lookup table); returns (type, length) of each (their values all
    differ: USD stores equal values once)."""
    rng = np.random.default_rng(0)
    (path.parent / "other.usda").write_text('#usda 1.0\ndef Xform "R"\n{\n}\n')  # what the reference names
    stage = Usd.Stage.CreateNew(str(path))
    mesh = UsdGeom.Mesh.Define(stage, "/Root/M")
    mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(rng.random((1000, 3)).astype(np.float32)))
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(300, 3, np.int32)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(rng.integers(0, 1000, 900).astype(np.int32)))
    normals = mesh.CreateNormalsAttr()
    for frame in range(3):
        normals.Set(Vt.Vec3fArray.FromNumpy(rng.random((10 + frame, 3)).astype(np.float32)), frame)
    st = UsdGeom.PrimvarsAPI(mesh).CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.faceVarying)
    st.Set(Vt.Vec2fArray.FromNumpy(rng.random((50, 2)).astype(np.float32)))
    st.SetIndices(Vt.IntArray.FromNumpy(rng.integers(0, 50, 900).astype(np.int32)))
    mesh.GetPrim().SetCustomDataByKey("ids", Vt.IntArray(list(range(51))))
    mesh.GetPrim().SetCustomDataByKey("nested", {"f": Vt.FloatArray([1.5] * 40), "d": Vt.DoubleArray(rng.random(33))})
    extra = stage.DefinePrim("/Root/X")
    values = {
        "tokens": (Sdf.ValueTypeNames.TokenArray, Vt.TokenArray(["a", "b", "c"])),
        "strings": (Sdf.ValueTypeNames.StringArray, Vt.StringArray(["a", "bb"])),
        "halves": (Sdf.ValueTypeNames.HalfArray, Vt.HalfArray([1.0] * 100)),
        "floats": (Sdf.ValueTypeNames.FloatArray, Vt.FloatArray(rng.random(101))),  # plain
        "integral": (Sdf.ValueTypeNames.FloatArray, Vt.FloatArray([float(i) for i in range(102)])),  # as ints
        "few": (Sdf.ValueTypeNames.DoubleArray, Vt.DoubleArray([0.5, 0.25] * 52)),  # a lookup table
        "int64": (Sdf.ValueTypeNames.Int64Array, Vt.Int64Array(list(range(105)))),
        "matrices": (Sdf.ValueTypeNames.Matrix4dArray, Vt.Matrix4dArray([Gf.Matrix4d(1)] * 5)),
        "short": (Sdf.ValueTypeNames.IntArray, Vt.IntArray([1, 2, 3, 4])),
        "timecodes": (Sdf.ValueTypeNames.TimeCodeArray, Sdf.TimeCodeArray([Sdf.TimeCode(i) for i in range(20)])),
    }
    for name, (kind, value) in values.items():
        extra.CreateAttribute(name, kind).Set(value)
    extra.CreateAttribute("empty", Sdf.ValueTypeNames.IntArray).Set(Vt.IntArray())
    extra.GetReferences().AddReference(Sdf.Reference("./other.usda", "/R", customData={"a": Vt.IntArray(range(77))}))
    variants = extra.GetVariantSets().AddVariantSet("look")
    variants.AddVariant("a")
    variants.SetVariantSelection("a")
    with variants.GetVariantEditContext():
        extra.CreateAttribute("inVariant", Sdf.ValueTypeNames.Float3Array).Set(Vt.Vec3fArray(66))
    stage.Save()
    return [("float3", 1000), ("int", 300), ("int", 900), ("float3", 10), ("float3", 11), ("float3", 12),
            ("float2", 50), ("int", 900), ("int", 51), ("float", 40), ("double", 33), ("token", 3), ("string", 2),
            ("half", 100), ("float", 101), ("float", 102), ("double", 104), ("int64", 105), ("matrix4d", 5),
            ("int", 4), ("timecode", 20), ("int", 77), ("float3", 66)]  # fmt: skip


def test_the_scan_finds_every_array_with_its_length(tmp_path: Path) -> None:
    path = tmp_path / "kinds.usdc"
    expected = arrays_of_every_kind(path)
    assert Counter(crate_arrays(path)) == Counter(expected)
    assert load_mesh(path).n_vertices == 1000  # and the loader reads it


def test_an_array_over_what_a_mesh_within_the_limits_can_have_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kinds.usdc"
    arrays_of_every_kind(path)
    # 60,000 bytes of budget admit meshes of at most 400 face corners (150 bytes each while loading).
    limits = LoadLimits(max_vertices=100, max_memory_bytes=60_000)
    with pytest.raises(MeshLoadError, match=r"kinds\.usdc: binary USD: an array of (1,000|900) (float3|int) values "
                                            r".* is over the memory budget: .* over 400 elements"):
        load_mesh(path, limits=limits)


def test_old_crate_versions_and_packages_in_packages_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.usdc"
    arrays_of_every_kind(path)
    data = bytearray(path.read_bytes())
    data[8:11] = bytes([0, 3, 0])  # crate 0.3.0
    path.write_bytes(bytes(data))
    with pytest.raises(MeshLoadError, match=r"old\.usdc: binary USD is crate version 0\.3\.0, older than"):
        load_mesh(path)

    inner = tmp_path / "inner.usdz"
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_STORED) as package:
        package.writestr("head.usda", "#usda 1.0\n")
    outer = tmp_path / "outer.usdz"
    with zipfile.ZipFile(outer, "w", zipfile.ZIP_STORED) as package:
        package.writestr("head.usda", "#usda 1.0\n")
        package.write(inner, "inner.usdz")
    with pytest.raises(MeshLoadError, match=r"outer\.usdz: binary USD: member 'inner\.usdz' is a package inside"):
        load_mesh(outer)


@pytest.mark.parametrize("section", ["TOKENS", "FIELDS", "SPECS"])
def test_a_structural_table_longer_than_its_section_is_corrupt(tmp_path: Path, section: str) -> None:
    """USD sizes each table from its first count before decoding it; a count its section's bytes cannot
    hold is a crafted or broken file."""
    path = tmp_path / "tables.usdc"
    arrays_of_every_kind(path)
    data = bytearray(path.read_bytes())
    (toc,) = struct.unpack_from("<q", data, 16)
    (count,) = struct.unpack_from("<Q", data, toc)
    starts = {}
    for index in range(count):
        name, start, _ = struct.unpack_from("<16sqq", data, toc + 8 + 32 * index)
        starts[name.rstrip(b"\0").decode()] = start
    struct.pack_into("<Q", data, starts[section], 10**12)
    path.write_bytes(bytes(data))
    with pytest.raises(MeshLoadError, match=rf"tables\.usdc: binary USD is corrupt: its {section} section of "
                                            r"[\d,]+ bytes claims 1,000,000,000,000 entries"):
        load_mesh(path)
