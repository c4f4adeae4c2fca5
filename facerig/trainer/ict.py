"""ICT-FaceKit as a training source: read the FaceXModel (folder or .tar archive) into arrays.

The ICT FaceKit ``FaceXModel`` holds 158 OBJ files of one topology (26,719 vertices): the neutral
``generic_neutral_mesh.obj``, 100 identity modes ``identity000.obj`` … ``identity099.obj`` and 57
expression shapes, each stored as a full mesh (neutral + mode), plus ``vertex_indices.json`` (the 68
Multi-PIE landmark vertices). The model is linear:

    head = neutral + Σ wᵢ (identityᵢ − neutral) + Σ eⱼ (expressionⱼ − neutral)

so expression deltas do not depend on the identity. Since every file shares its ``vt``/``f`` lines, the
topology is parsed once from the neutral and only the ``v`` block of the others is read; a file whose
faces differ from the neutral's is refused rather than silently mixed in.

An archive (``.tar.xz``, ``.tar.gz``, ``.tar``) is streamed member by member, in memory, without
unpacking its 387 MB to disk.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerig.errors import DatasetError
from facerig.geometry import fan_triangles
from facerig.trainer.assets import FileStream, archive_files, read_capped, source_files

__all__ = [
    "EXPRESSION_NAMES",
    "ICTModel",
    "PARTS",
    "REGIONS",
    "load_ict",
    "required_files",
]

NEUTRAL_FILE = "generic_neutral_mesh.obj"
INDEX_FILE = "vertex_indices.json"
N_IDENTITIES = 100
N_VERTICES = 26_719

# The 57 expression shapes of the FaceXModel (ARKit names with _L/_R, plus the ICT extras).
EXPRESSION_NAMES: tuple[str, ...] = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R",
    "cheekPuff_L", "cheekPuff_R", "cheekRaiser_L", "cheekRaiser_R", "cheekSquint_L", "cheekSquint_R",
    "eyeBlink_L", "eyeBlink_R", "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R",
    "eyeLookOut_L", "eyeLookOut_R", "eyeLookUp_L", "eyeLookUp_R", "eyeSquint_L", "eyeSquint_R",
    "eyeWide_L", "eyeWide_R", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimple_L", "mouthDimple_R", "mouthFrown_L", "mouthFrown_R", "mouthFunnel", "mouthLeft",
    "mouthLowerDown_L", "mouthLowerDown_R", "mouthPress_L", "mouthPress_R", "mouthPucker", "mouthRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmile_L",
    "mouthSmile_R", "mouthStretch_L", "mouthStretch_R", "mouthUpperUp_L", "mouthUpperUp_R",
    "noseSneer_L", "noseSneer_R", "PupilDilate_L", "PupilDilate_R",
)  # fmt: skip

# Semantic regions of a head, stored per vertex as an index into this tuple.
REGIONS: tuple[str, ...] = (
    "face",  # the narrow face: what an animator rigs
    "head",  # the rest of the skin: forehead top, ears, back of the head, neck
    "mouth_interior",  # mouth socket, gums and tongue
    "teeth",
    "eye_socket",
    "eyeball",
    "eye_surface",  # lacrimal fluid, eye blend and eye occlusion shells
    "eyelashes",
)

# The FaceXModel's parts by vertex range (0-based, inclusive), each with its region. The first five
# ranges form one connected surface; "face" is split at 6705, the end of the narrow face.
PARTS: tuple[tuple[str, int, int, str], ...] = (
    ("face", 0, 6705, "face"),
    ("face_outer", 6706, 9408, "head"),
    ("head_neck", 9409, 11247, "head"),
    ("mouth_socket", 11248, 13293, "mouth_interior"),
    ("eye_socket_left", 13294, 13677, "eye_socket"),
    ("eye_socket_right", 13678, 14061, "eye_socket"),
    ("gums_tongue", 14062, 17038, "mouth_interior"),
    ("teeth", 17039, 21450, "teeth"),
    ("eyeball_left", 21451, 23020, "eyeball"),
    ("eyeball_right", 23021, 24590, "eyeball"),
    ("lacrimal_left", 24591, 24794, "eye_surface"),
    ("lacrimal_right", 24795, 24998, "eye_surface"),
    ("eye_blend_left", 24999, 25022, "eye_surface"),
    ("eye_blend_right", 25023, 25046, "eye_surface"),
    ("eye_occlusion_left", 25047, 25198, "eye_surface"),
    ("eye_occlusion_right", 25199, 25350, "eye_surface"),
    ("eyelashes_left", 25351, 26034, "eyelashes"),
    ("eyelashes_right", 26035, 26718, "eyelashes"),
)


def required_files() -> tuple[str, ...]:
    """Every FaceXModel file the builder reads."""
    return (
        (NEUTRAL_FILE, INDEX_FILE)
        + tuple(f"{name}.obj" for name in EXPRESSION_NAMES)
        + tuple(f"identity{i:03d}.obj" for i in range(N_IDENTITIES))
    )


class PolygonModel:
    """What a source head model (ICT's, MakeHuman's) derives from its ``neutral`` (V, 3) positions and its polygons
    (``face_vertex_counts``, ``face_vertex_indices``): the vertex count and the builders' fan triangulation."""

    neutral: np.ndarray
    face_vertex_counts: np.ndarray
    face_vertex_indices: np.ndarray

    @property
    def n_vertices(self) -> int:
        return len(self.neutral)

    @property
    def triangles(self) -> np.ndarray:
        """(F, 3) int64 fan triangulation of the polygons (quads split along corner 0, as every builder does)."""
        return fan_triangles(self.face_vertex_counts, self.face_vertex_indices)


@dataclass(frozen=True, eq=False)
class ICTModel(PolygonModel):
    """The FaceXModel as arrays, in its own frame (centimetres, +Y up, face looks along +Z).

    Attributes:
        neutral: (V, 3) float64 neutral positions.
        identity_deltas: (100, V, 3) float32 identity modes minus the neutral.
        expression_deltas: (57, V, 3) float32 expression shapes minus the neutral, in
            :data:`EXPRESSION_NAMES` order.
        face_vertex_counts: (P,) int32 polygon sizes; face_vertex_indices: (N,) int64 polygon corners.
        landmarks: (68,) int64 Multi-PIE landmark vertex indices.
        licence: the MIT licence text shipped with the kit, when the source had it.
        source: the folder or archive it was read from.
    """

    neutral: np.ndarray
    identity_deltas: np.ndarray
    expression_deltas: np.ndarray
    face_vertex_counts: np.ndarray
    face_vertex_indices: np.ndarray
    landmarks: np.ndarray
    licence: str | None
    source: str

    def part_of_vertex(self) -> np.ndarray:
        """(V,) int64 index into :data:`PARTS` of each vertex."""
        part = np.full(self.n_vertices, -1, np.int64)
        for i, (_, lo, hi, _) in enumerate(PARTS):
            part[lo : hi + 1] = i
        return part

    def region_of_vertex(self) -> np.ndarray:
        """(V,) int64 index into :data:`REGIONS` of each vertex."""
        region_of_part = np.array([REGIONS.index(region) for *_, region in PARTS])
        return region_of_part[self.part_of_vertex()]

    def head(self, identity_weights: np.ndarray) -> np.ndarray:
        """(V, 3) float64 neutral + Σ wᵢ identity deltaᵢ for (100,) weights."""
        w = np.asarray(identity_weights, np.float64)
        return self.neutral + np.tensordot(w, self.identity_deltas, axes=1)

    def expression(self, name: str) -> np.ndarray:
        """(V, 3) float32 delta of one ICT expression shape."""
        return self.expression_deltas[EXPRESSION_NAMES.index(name)]


# ---------------------------------------------------------------------------------------------- parsing
def _vertex_block(data: bytes, name: str, where: Path) -> tuple[np.ndarray, int]:
    """(V, 3) float64 of the ``v`` lines and the offset where the rest of the file (vt, f) starts."""
    start = data.find(b"\nv ")
    end = data.find(b"\nvt ")
    if start < 0 or end < start:
        raise DatasetError(f"{name} has no 'v' block followed by 'vt' lines", where)
    block = data[start + 1 : end + 1]
    # The ``v`` tokens become blanks and the rest parses in C; the count check catches any other token.
    values = np.fromstring(block.replace(b"v", b" "), sep=" ")
    n_lines = block.count(b"\n")
    if values.size != 3 * n_lines:
        raise DatasetError(f"{name}: malformed vertex lines", where)
    return values.reshape(-1, 3), end + 1


def _polygons(tail: bytes, name: str, where: Path) -> tuple[np.ndarray, np.ndarray]:
    lines = [line for line in tail.split(b"\n") if line.startswith(b"f ")]
    if not lines:
        raise DatasetError(f"{name} has no faces", where)
    counts = np.array([line.count(b" ") for line in lines], np.int32)
    tokens = b" ".join(line[2:].strip() for line in lines).split()
    corners = np.array([token.split(b"/")[0] for token in tokens], np.int64) - 1
    if len(corners) != counts.sum():
        raise DatasetError(f"{name}: malformed face lines", where)
    return counts, corners


LICENCE_FILE = "LICENSE"


def _folder_files(folder: Path) -> FileStream:
    present = {p.name for p in folder.iterdir() if p.is_file()}
    missing = [name for name in required_files() if name not in present]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DatasetError(f"FaceXModel folder lacks {missing[0]}{more}", folder)
    for name in required_files():
        yield name, read_capped(folder / name, name, folder)
    if (folder.parent / LICENCE_FILE).is_file():
        yield LICENCE_FILE, read_capped(folder.parent / LICENCE_FILE, LICENCE_FILE, folder.parent)


def _archive_files(archive_path: Path) -> FileStream:
    """Stream the archive once, in memory; members outside ``*/FaceXModel/`` (but the licence) are skipped."""
    wanted = set(required_files())

    def pick(member: tarfile.TarInfo) -> str | None:
        path = Path(member.name)
        if path.parent.name == "FaceXModel" and path.name in wanted:
            return path.name
        if path.name == LICENCE_FILE and len(path.parts) <= 2:
            return LICENCE_FILE
        return None

    return archive_files(archive_path, pick)


def load_ict(source: str | Path) -> ICTModel:
    """Read the ICT FaceXModel from its folder or from the ICT-FaceKit archive.

    Args:
        source: the ``FaceXModel`` folder, the folder that contains it, or a ``.tar.xz``/``.tar.gz``/``.tar``
            archive holding ``*/FaceXModel/``.

    Raises:
        DatasetError: naming the first missing file (``FaceXModel folder lacks identity042.obj``), a file
            whose vertex count or faces differ from the neutral's, or an unreadable archive.
    """
    source = Path(source)
    if source.is_dir() and not (source / NEUTRAL_FILE).exists() and (source / "FaceXModel").is_dir():
        source = source / "FaceXModel"
    stream = source_files(source, _folder_files, _archive_files,
                          "ICT-FaceKit source not found (expected a FaceXModel folder or its archive)")

    files: dict[str, np.ndarray] = {}
    neutral_tail: bytes | None = None
    pending: dict[str, bytes] = {}
    topology = None
    landmarks = None
    licence = None
    # Archive order is arbitrary: files that arrive before the neutral keep a digest of their vt/f lines
    # until the neutral's is known.
    for name, data in stream:
        if name == LICENCE_FILE:
            licence = data.decode("utf-8", errors="replace")
            continue
        if name == INDEX_FILE:
            try:
                landmarks = np.asarray(json.loads(data)["idx_to_landmark_verts"], np.int64)
            except (ValueError, KeyError, TypeError) as exc:
                raise DatasetError(f"{INDEX_FILE} is malformed ({exc})", source) from None
            continue
        vertices, tail_at = _vertex_block(data, name, source)
        if len(vertices) != N_VERTICES:
            raise DatasetError(f"{name} has {len(vertices)} vertices, expected {N_VERTICES}", source)
        files[name] = vertices
        tail = hashlib.sha1(data[tail_at:]).digest()
        if name == NEUTRAL_FILE:
            neutral_tail = tail
            topology = _polygons(data[tail_at:], name, source)
        else:
            pending[name] = tail
        if neutral_tail is not None:
            for other, other_tail in pending.items():
                if other_tail != neutral_tail:
                    raise DatasetError(f"{other} does not share the neutral's topology (its vt/f lines differ)", source)
            pending.clear()
    found = set(files) | ({INDEX_FILE} if landmarks is not None else set())
    missing = [name for name in required_files() if name not in found]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DatasetError(f"archive lacks FaceXModel/{missing[0]}{more}", source)
    if len(landmarks) != 68 or landmarks.min() < 0 or landmarks.max() >= N_VERTICES:
        raise DatasetError(f"{INDEX_FILE} must list 68 landmark vertex indices", source)

    neutral = files[NEUTRAL_FILE]
    counts, corners = topology
    if corners.min() < 0 or corners.max() >= N_VERTICES:
        raise DatasetError(f"{NEUTRAL_FILE}: face index out of range", source)
    identities = np.stack([files[f"identity{i:03d}.obj"] - neutral for i in range(N_IDENTITIES)]).astype(np.float32)
    expressions = np.stack([files[f"{name}.obj"] - neutral for name in EXPRESSION_NAMES]).astype(np.float32)
    return ICTModel(
        neutral=neutral,
        identity_deltas=identities,
        expression_deltas=expressions,
        face_vertex_counts=counts,
        face_vertex_indices=corners,
        landmarks=landmarks,
        licence=licence,
        source=str(source),
    )
