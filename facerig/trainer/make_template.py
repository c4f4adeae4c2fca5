"""Regenerate the deformation-transfer template shipped in ``facerig/data/template/``.

The template is the ICT-FaceKit neutral, re-meshed to a few thousand vertices with every component kept,
plus the delta of each FACS action from the ICT mapping of the vocabulary (float16), with the EyesLook eyeball
turn of the training data (:func:`facerig.trainer.dataset.gaze_deltas`). It is what
:mod:`facerig.rigging.transfer` registers to a target head, so that module needs no ICT archive at run time.

    python -m facerig.trainer.make_template ../shared/data/ICT-FaceKit.tar.xz
    python -m facerig.trainer.make_template path/to/FaceXModel --budget 6000 --seed 0

Output (``template.npz``, loaded with ``allow_pickle=False``):

==================  ===================  =====================================================
key                 dtype / shape        meaning
==================  ===================  =====================================================
``vertices``        float32 (V, 3)       neutral, ICT units (cm) and axes (Y up, face along +Z)
``triangles``       int32 (F, 3)         triangles
``pieces``          int32 (V,)           connected piece of each vertex, numbered as ICT's pieces
``action_names``    str (A,)             FACS action full names, vocabulary order
``deltas``          float16 (A, V, 3)    per-action delta (cm); zeros where ``labelled`` is False
``labelled``        bool (A,)            False for actions ICT has no counterpart for
==================  ===================  =====================================================

plus ``LICENSE-ICT-FaceKit.txt`` (the MIT notice the data is derived under).
"""

from __future__ import annotations

import argparse
import io
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from facerig.errors import DatasetError
from facerig.fileio import write_bytes_atomic
from facerig.io import load_mesh
from facerig.trainer.dataset import BuildOptions, gaze_deltas
from facerig.trainer.ict import PARTS
from facerig.geometry.remesh import RemeshOptions, remesh
from facerig.vocabulary import Vocabulary, load_vocabulary

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "data" / "template"
TEMPLATE_FILE = "template.npz"
LICENSE_FILE = "LICENSE-ICT-FaceKit.txt"
NEUTRAL_FILE = "generic_neutral_mesh.obj"
DEFAULT_BUDGET = 6000


def build_template(
    face_x: Path, *, budget: int = DEFAULT_BUDGET, seed: int = 0, vocabulary: Vocabulary | None = None
) -> dict[str, np.ndarray]:
    """The template arrays (see the module docstring) from an unpacked ICT-FaceKit ``FaceXModel`` folder.

    Raises:
        DatasetError: the folder lacks the neutral or an expression the vocabulary's ICT map uses.
    """
    vocabulary = vocabulary or load_vocabulary()
    neutral_path = face_x / NEUTRAL_FILE
    if not neutral_path.is_file():
        raise DatasetError(f"not an ICT-FaceKit FaceXModel folder: {NEUTRAL_FILE} is missing", face_x)
    neutral = load_mesh(neutral_path)
    remeshed = remesh(neutral.vertices, neutral.triangles, RemeshOptions(budget=budget), np.random.default_rng(seed))

    recipes = vocabulary.ict_recipes()
    shapes_needed = sorted({s for shapes in recipes.values() if shapes for s in shapes})
    ict_deltas: dict[str, np.ndarray] = {}
    for shape in shapes_needed:
        path = face_x / f"{shape}.obj"
        if not path.is_file():
            raise DatasetError(f"ICT expression {shape}.obj is missing", face_x)
        posed = load_mesh(path).vertices
        if posed.shape != neutral.vertices.shape:
            raise DatasetError(f"{shape}.obj has {len(posed)} vertices, the neutral {len(neutral.vertices)}", path)
        ict_deltas[shape] = posed - neutral.vertices

    names = vocabulary.action_names
    full = np.zeros((len(names), neutral.n_vertices, 3))
    labelled = np.zeros(len(names), bool)
    for i, name in enumerate(names):
        if recipes[name]:
            full[i] = sum(ict_deltas[s] for s in recipes[name])
            labelled[i] = True
    # The same EyesLook eyeball turn as the training data's ground truth (ICT's own shapes move only the lids).
    parts = np.full(neutral.n_vertices, -1, np.int64)
    for index, (_, first, last, _) in enumerate(PARTS):
        parts[first : last + 1] = index
    full += gaze_deltas(neutral.vertices, parts, BuildOptions().gaze_degrees)
    deltas = remeshed.transfer.apply(full)  # (A, V', 3)
    return {
        "vertices": remeshed.vertices.astype(np.float32),
        "triangles": remeshed.triangles.astype(np.int32),
        "pieces": remeshed.pieces.astype(np.int32),
        "action_names": np.array(names),
        "deltas": deltas.astype(np.float16),
        "labelled": labelled,
    }


def write_template(arrays: dict[str, np.ndarray], license_text: str, directory: Path = TEMPLATE_DIR) -> Path:
    """Write ``template.npz`` (compressed) and the licence notice into ``directory``, atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_bytes_atomic(directory / LICENSE_FILE, license_text.encode())
    return write_bytes_atomic(directory / TEMPLATE_FILE, buffer.getvalue())


def _face_x_folder(source: Path, scratch: Path) -> tuple[Path, str]:
    """(FaceXModel folder, licence text) from the folder itself, its parent, or the .tar.xz archive."""
    if source.is_file():
        with tarfile.open(source) as archive:
            archive.extractall(scratch, filter="data")
        candidates = sorted(scratch.rglob(NEUTRAL_FILE))
        if not candidates:
            raise DatasetError(f"the archive holds no {NEUTRAL_FILE}", source)
        source = candidates[0].parent
    if (source / "FaceXModel").is_dir():
        source = source / "FaceXModel"
    for folder in (source, source.parent):
        if (folder / "LICENSE").is_file():
            return source, (folder / "LICENSE").read_text()
    raise DatasetError("the ICT-FaceKit LICENSE is missing; it must travel with derived data", source)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="ICT-FaceKit.tar.xz or an unpacked FaceXModel folder")
    parser.add_argument("--budget", type=int, default=DEFAULT_BUDGET, help="vertex budget of the template")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=TEMPLATE_DIR)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        face_x, license_text = _face_x_folder(args.source, Path(scratch))
        arrays = build_template(face_x, budget=args.budget, seed=args.seed)
    header = (
        "The facerig deformation-transfer template (template.npz) is derived from ICT-FaceKit\n"
        "(USC Institute for Creative Technologies, https://github.com/ICT-VGL/ICT-FaceKit):\n"
        "the neutral head re-meshed, and FACS pose deltas summed from its expression shapes\n"
        "(plus a synthesised eyeball turn for the four EyesLook poses).\n\n"
    )
    path = write_template(arrays, header + license_text, args.out)
    print(f"{path}: {len(arrays['vertices'])} vertices, {path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
