"""The ``.facerig.npz`` rig bundle: bytes in, bytes out, like every other format of this package.

Bundle layout (``.facerig.npz``, a plain numpy archive, loaded with ``allow_pickle=False``):

=====================  ===================  ==============================================
key                    dtype / shape        meaning
=====================  ===================  ==============================================
``format_version``     int64 ()             bundle version (:data:`BUNDLE_VERSION`)
``vertices``           float64 (V, 3)       neutral positions
``face_vertex_counts`` int32 (P,)           corners per polygon
``face_vertex_indices`` int64 (N,)          polygon corners
``uvs``/``uv_indices`` float32 (T, 2)/(N,)  face-varying UVs (absent when the mesh has none)
``polygon_groups``     int32 (P,)           polygon group ids
``deltas``             float32 (S, V, 3)    one delta per shape, in ``shape_names`` order
``header``             str ()               JSON: shape_names, corrective_recipes, group_names,
                                            mesh name/up_axis/meters_per_unit, metadata
=====================  ===================  ==============================================

The archive is written deterministically (:func:`facerig.fileio.npz_bytes`: fixed member order and timestamps), so the same rig
gives the same bytes on every run. Reading treats the file as untrusted: every member's npy header is read and
the total unpacked size checked against :class:`facerig.io.LoadLimits` before any array is unpacked.

:class:`facerig.rig.Rig` saves and loads itself through :func:`encode_bundle` and :func:`decode_bundle`; this
module knows nothing of the ``Rig`` class, so the rig depends on the exporters and never the other way round.
"""

from __future__ import annotations

import json
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from facerig.errors import BundleError, MeshLoadError
from facerig.fileio import npz_bytes
from facerig.mesh import Mesh
from facerig.safe_json import loads_bounded

if TYPE_CHECKING:
    from facerig.io._common import LoadLimits

BUNDLE_VERSION = 1
BUNDLE_SUFFIX = ".facerig.npz"
_BUNDLE_KEYS = ("format_version", "vertices", "face_vertex_counts", "face_vertex_indices", "uvs", "uv_indices",
                "polygon_groups", "deltas", "header")  # fmt: skip
_MAX_HEADER_BYTES = 64 * 1024**2  # the JSON header (shape names, recipes, metadata) is kilobytes


@dataclass(frozen=True, eq=False)
class BundleContents:
    """What a bundle holds: the fields of a :class:`facerig.rig.Rig`."""

    neutral: Mesh
    shape_names: tuple[str, ...]
    deltas: np.ndarray
    corrective_recipes: dict[str, tuple[str, ...]]
    metadata: dict[str, Any]


def encode_bundle(
    neutral: Mesh,
    shape_names: Sequence[str],
    deltas: np.ndarray,
    corrective_recipes: Mapping[str, Sequence[str]],
    metadata: Mapping[str, Any],
) -> bytes:
    """The bundle's bytes (a stored, uncompressed numpy ``.npz`` archive; see the module docstring)."""
    header = {
        "shape_names": list(shape_names),
        "corrective_recipes": {k: list(v) for k, v in corrective_recipes.items()},
        "group_names": list(neutral.group_names),
        "mesh_name": neutral.name,
        "up_axis": neutral.up_axis,
        "meters_per_unit": neutral.meters_per_unit,
        "source": neutral.source,
        "metadata": dict(metadata),
    }
    arrays = {
        "format_version": np.array(BUNDLE_VERSION, np.int64),
        "vertices": neutral.vertices,
        "face_vertex_counts": neutral.face_vertex_counts,
        "face_vertex_indices": neutral.face_vertex_indices,
        "polygon_groups": neutral.polygon_groups,
        "deltas": np.asarray(deltas, np.float32),
        "header": np.array(json.dumps(header, allow_nan=False, sort_keys=True)),
    }
    if neutral.uvs is not None:
        arrays["uvs"] = neutral.uvs
        arrays["uv_indices"] = neutral.uv_indices
    return npz_bytes(arrays)


def decode_bundle(path: str | Path, limits: "LoadLimits | None" = None) -> BundleContents:
    """Read a bundle file; raise :class:`BundleError` naming the file and the problem.

    Raises:
        BundleError: unreadable, over ``limits``, a member of the wrong kind, a header that is not what a
            bundle holds, a newer bundle version, or arrays that do not make a mesh and its deltas.
    """
    from facerig.io._common import LoadLimits

    path = Path(path)
    data = _read_bundle_arrays(path, limits or LoadLimits())
    required = ("format_version", "vertices", "face_vertex_counts", "face_vertex_indices", "deltas", "header")
    missing = [key for key in required if key not in data]
    if missing:
        raise BundleError(f"rig bundle is missing {', '.join(missing)}", path)
    if data["format_version"].shape != () or data["format_version"].dtype.kind not in "iu":
        raise BundleError("rig bundle format_version is not an integer", path)
    version = int(data["format_version"])
    if version > BUNDLE_VERSION:
        raise BundleError(
            f"rig bundle version {version} is newer than this facerig reads ({BUNDLE_VERSION}); upgrade facerig",
            path,
        )
    header = _bundle_header(data["header"], path)
    try:
        mesh = Mesh(
            data["vertices"],
            data["face_vertex_counts"],
            data["face_vertex_indices"],
            uvs=data.get("uvs"),
            uv_indices=data.get("uv_indices"),
            polygon_groups=data.get("polygon_groups"),
            group_names=tuple(header["group_names"]),
            up_axis=header["up_axis"],
            meters_per_unit=header["meters_per_unit"],
            name=header["mesh_name"],
            source=header["source"],
        )
    except (TypeError, ValueError) as exc:  # arrays of the wrong kind or shape
        raise BundleError(f"corrupt rig bundle: {exc}", path) from None
    except MeshLoadError as exc:
        raise BundleError(f"corrupt rig bundle: {exc.reason}", path) from None
    return BundleContents(
        neutral=mesh,
        shape_names=tuple(header["shape_names"]),
        deltas=data["deltas"],
        corrective_recipes={k: tuple(v) for k, v in header["corrective_recipes"].items()},
        metadata=header["metadata"],
    )


# ---------------------------------------------------------------------------------------------- bundle reading
def _read_bundle_arrays(path: Path, limits: "LoadLimits") -> dict[str, np.ndarray]:
    """Every array of a bundle, after checking each npy header (dtype, shape) against ``limits``."""
    try:
        info = path.stat()
    except OSError:
        raise BundleError("no such rig bundle", path) from None
    if not stat.S_ISREG(info.st_mode):  # a FIFO would block the reader
        raise BundleError("not a regular file", path)
    if info.st_size > limits.max_file_bytes:
        raise BundleError(
            f"rig bundle is {info.st_size:,} bytes, over the limit of {limits.max_file_bytes:,} "
            "(LoadLimits.max_file_bytes)",
            path,
        )
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if m.filename.endswith(".npy")]
            headers = {}
            for member in members:
                with archive.open(member) as stream:
                    headers[member.filename] = _npy_header(stream, member.filename, path)
            _check_bundle_size(headers, limits, path)
            data = {}
            for member in members:
                with archive.open(member) as stream:
                    data[member.filename[: -len(".npy")]] = np.lib.format.read_array(stream, allow_pickle=False)
    except BundleError:
        raise
    # zipfile raises NotImplementedError for a member stored with a compression method it lacks (a hostile or
    # foreign archive): that is an unreadable bundle too, not a bug.
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise BundleError(f"not a readable rig bundle ({exc})", path) from None
    return data


def _npy_header(stream: IO[bytes], name: str, path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from an npy member's header, without reading its data."""
    version = np.lib.format.read_magic(stream)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise BundleError(f"rig bundle member {name} is npy format {version}, not 1.0 or 2.0", path)
    shape, _, dtype = readers[version](stream)
    if dtype.hasobject:
        raise BundleError(f"rig bundle member {name} holds Python objects; bundles hold plain arrays", path)
    return shape, dtype


def _check_bundle_size(headers: dict[str, tuple[tuple[int, ...], np.dtype]], limits: "LoadLimits", path: Path) -> None:
    """Refuse unknown members, and arrays whose headers add up to more than ``limits`` allow."""
    from facerig.io._common import check_vertex_count

    unknown = sorted(name for name in headers if name[: -len(".npy")] not in _BUNDLE_KEYS)
    if unknown:
        raise BundleError(f"rig bundle has unknown members {unknown[:3]}", path)
    sizes = {name: int(np.prod(shape, dtype=object)) * dtype.itemsize for name, (shape, dtype) in headers.items()}
    total = sum(sizes.values())
    if total > limits.max_memory_bytes:
        raise BundleError(
            f"rig bundle unpacks to {total:,} bytes, over the memory budget of {limits.max_memory_bytes:,} "
            "(LoadLimits.max_memory_bytes)",
            path,
        )
    if sizes.get("header.npy", 0) > _MAX_HEADER_BYTES:
        raise BundleError(f"rig bundle header is {sizes['header.npy']:,} bytes, over {_MAX_HEADER_BYTES:,}", path)
    vertex_shape = headers.get("vertices.npy", ((),))[0]
    if vertex_shape:
        try:
            check_vertex_count(vertex_shape[0], limits, path)
        except MeshLoadError as exc:
            raise BundleError(exc.reason, path) from None


# What a bundle header holds: key -> (accepted types, default when absent).
_HEADER_FIELDS: dict[str, tuple[tuple[type, ...], Any]] = {
    "shape_names": ((list,), None),
    "corrective_recipes": ((dict,), {}),
    "group_names": ((list,), []),
    "mesh_name": ((str,), "mesh"),
    "up_axis": ((str, type(None)), None),
    "meters_per_unit": ((int, float, type(None)), None),
    "source": ((str, type(None)), None),
    "metadata": ((dict,), {}),
}


def _bundle_header(value: np.ndarray, path: Path) -> dict[str, Any]:
    """The bundle's JSON header, type-checked field by field."""
    if value.shape != () or value.dtype.kind != "U":
        raise BundleError("rig bundle header is not a JSON string", path)
    try:
        header = loads_bounded(str(value))
    except ValueError as exc:
        raise BundleError(f"rig bundle header is not valid JSON ({exc})", path) from None
    if not isinstance(header, dict):
        raise BundleError(f"rig bundle header is a JSON {type(header).__name__}, not an object", path)
    checked = {}
    for key, (types, default) in _HEADER_FIELDS.items():
        item = header.get(key, default)
        if item is None and type(None) not in types:
            raise BundleError(f"rig bundle header lacks {key!r}", path)
        if not isinstance(item, types) or isinstance(item, bool):
            raise BundleError(f"rig bundle header {key!r} is a {type(item).__name__}", path)
        checked[key] = item
    lists = [("shape_names", checked["shape_names"]), ("group_names", checked["group_names"])]
    lists += [(f"corrective_recipes[{k!r}]", v) for k, v in checked["corrective_recipes"].items()]
    for what, items in lists:
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise BundleError(f"rig bundle header {what} must be a list of names", path)
    return checked
