"""A FACS blendshape rig and its `.facerig.npz` bundle.

A :class:`Rig` is the neutral :class:`~facerig.mesh.Mesh` plus one named per-vertex delta per shape, in the
mesh's own units and axes. Shapes are the vocabulary's FACS poses (``neutral`` excluded: it is the base mesh)
followed by its correctives. A corrective's delta is ``combined − Σ single deltas`` and its driver recipe
(the base shapes whose weights multiply to drive it) is kept in :attr:`Rig.corrective_recipes`.

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
"""

from __future__ import annotations

import json
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from facerig.errors import BundleError, MeshLoadError
from facerig.fileio import atomic_path
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
class Rig:
    """A neutral mesh and its named blendshape deltas.

    Attributes:
        neutral: the neutral mesh, as read (file units and axes).
        shape_names: S shape names; FACS poses first, then correctives.
        deltas: (S, V, 3) float32 per-vertex offsets from the neutral, same units and axes as ``neutral``.
        corrective_recipes: corrective name -> names of the base shapes that drive it (weight = product).
        metadata: JSON-serialisable facts: vocabulary, model id, canonical frame, timings, facerig version.
    """

    neutral: Mesh
    shape_names: tuple[str, ...]
    deltas: np.ndarray
    corrective_recipes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        deltas = np.ascontiguousarray(self.deltas, dtype=np.float32)
        deltas.setflags(write=False)
        object.__setattr__(self, "deltas", deltas)
        object.__setattr__(self, "shape_names", tuple(self.shape_names))
        recipes = {name: tuple(bases) for name, bases in self.corrective_recipes.items()}
        object.__setattr__(self, "corrective_recipes", recipes)
        if deltas.shape != (len(self.shape_names), self.neutral.n_vertices, 3):
            raise BundleError(
                f"deltas have shape {deltas.shape}, expected "
                f"({len(self.shape_names)}, {self.neutral.n_vertices}, 3)"
            )
        if len(set(self.shape_names)) != len(self.shape_names):
            raise BundleError("shape names are not unique")
        unknown = [n for n in recipes if n not in self.shape_names]
        if unknown:
            raise BundleError(f"corrective recipes name shapes the rig lacks: {unknown[:3]}")
        unknown_bases = sorted({b for bases in recipes.values() for b in bases if b not in self.shape_names})
        if unknown_bases:
            raise BundleError(f"corrective recipes are driven by shapes the rig lacks: {unknown_bases[:3]}")

    # ------------------------------------------------------------------ access
    @property
    def n_shapes(self) -> int:
        return len(self.shape_names)

    @property
    def base_shape_names(self) -> tuple[str, ...]:
        """Shapes that are not correctives."""
        return tuple(n for n in self.shape_names if n not in self.corrective_recipes)

    def index(self, name: str) -> int:
        try:
            return self.shape_names.index(name)
        except ValueError:
            raise KeyError(f"the rig has no shape {name!r}") from None

    def delta(self, name: str) -> np.ndarray:
        """(V, 3) offsets of one shape."""
        return self.deltas[self.index(name)]

    def evaluate(self, weights: dict[str, float]) -> np.ndarray:
        """(V, 3) posed vertices for shape weights, as a DCC evaluates the rig.

        Correctives not named in ``weights`` are driven by the product of their base weights, so
        ``evaluate({"JawDrop": 1, "LeftLipCornerPuller": 1})`` gives the network's combined pose.
        """
        posed = self.neutral.vertices.copy()
        for name in self.shape_names:
            if name in weights:
                w = float(weights[name])
            elif name in self.corrective_recipes:
                w = float(np.prod([weights.get(b, 0.0) for b in self.corrective_recipes[name]]))
            else:
                w = 0.0
            if w:
                posed += w * self.deltas[self.index(name)]
        return posed

    # ------------------------------------------------------------------ bundle IO
    def save(self, path: str | Path) -> Path:
        """Write the rig as a `.facerig.npz` bundle, atomically."""
        path = Path(path)
        mesh = self.neutral
        header = {
            "shape_names": list(self.shape_names),
            "corrective_recipes": {k: list(v) for k, v in self.corrective_recipes.items()},
            "group_names": list(mesh.group_names),
            "mesh_name": mesh.name,
            "up_axis": mesh.up_axis,
            "meters_per_unit": mesh.meters_per_unit,
            "source": mesh.source,
            "metadata": self.metadata,
        }
        arrays = {
            "format_version": np.array(BUNDLE_VERSION, np.int64),
            "vertices": mesh.vertices,
            "face_vertex_counts": mesh.face_vertex_counts,
            "face_vertex_indices": mesh.face_vertex_indices,
            "polygon_groups": mesh.polygon_groups,
            "deltas": self.deltas,
            "header": np.array(json.dumps(header, allow_nan=False)),
        }
        if mesh.uvs is not None:
            arrays["uvs"] = mesh.uvs
            arrays["uv_indices"] = mesh.uv_indices
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path, limits: "LoadLimits | None" = None) -> "Rig":
        """Read a `.facerig.npz` bundle; raise :class:`BundleError` naming the problem.

        A bundle is untrusted input: every array's npy header is read and the total unpacked size checked
        against ``limits`` (:class:`facerig.io.LoadLimits`: file size, vertex count, memory budget) before
        any array is unpacked, so a small archive cannot inflate to gigabytes.
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
            return cls(
                neutral=mesh,
                shape_names=tuple(header["shape_names"]),
                deltas=data["deltas"],
                corrective_recipes={k: tuple(v) for k, v in header["corrective_recipes"].items()},
                metadata=header["metadata"],
            )
        except (TypeError, ValueError) as exc:  # arrays of the wrong kind or shape
            raise BundleError(f"corrupt rig bundle: {exc}", path) from None
        except Exception as exc:  # a Mesh/Rig validation error: re-raise naming the bundle
            if isinstance(exc, (BundleError, MeshLoadError)):
                raise BundleError(f"corrupt rig bundle: {getattr(exc, 'reason', exc)}", path) from None
            raise

    def export(self, path: str | Path, format: str | None = None, **options: Any) -> Path:
        """Write the rig in an interchange format (usd, usda, glb, gltf, fbx, npz); see facerig.exporters."""
        from facerig.exporters import export_rig

        return export_rig(self, path, format=format, **options)


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
