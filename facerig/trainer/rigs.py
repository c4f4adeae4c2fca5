"""A training/evaluation dataset from a studio's own rigged heads: ``facerig data rigs FOLDER -o DATASET``.

Every file under FOLDER that a blend-shape reader takes (glTF morph targets, USD blend shapes; see
:mod:`facerig.io.rigged_heads` for how shape names become FACS poses) becomes one rigged sample in the on-disk
format of :mod:`facerig.trainer.dataset` (``manifest.json`` + ``samples/<name>.npz``), so ``facerig train``,
``facerig eval --dataset`` and :class:`facerig.trainer.dataset.HeadDataset` read it unchanged. A head is taken
as it is: no re-meshing, blending or augmentation (a studio's few heads are the point of the data).

Per sample, against the ICT builder's fields:

- ``vertices``/``deltas`` keep the file's units (``meters_per_unit``: glTF metres, USD metersPerUnit) and are
  turned to the dataset's axes (+Y up, face along +Z) by the file's up axis; ``transform`` records that turn.
- ``deltas`` hold the 47 actions from the file, then the correctives as zeros; ``labelled`` is True only for
  the actions the file gives (correctives are never labelled): the rest carry no 3D loss and no error.
- Studio rigs have no ICT annotations, so they are written empty and the readers skip them: ``landmarks``,
  ``landmark_triangles`` (0,), ``landmark_barycentrics`` (0, 3) and ``eyelid_pairs`` (0, 2) (the trainer's 2D
  landmark and eye-closure terms are zero for such heads), ``regions`` and ``parts`` -1 for every vertex (the
  manifest's ``regions`` and ``parts`` lists are empty, so the evaluator reports no per-region table).

Heads are split by file (seeded; ``val_fraction``/``test_fraction``, default: all in ``train``). Refused heads
do not stop the build: ``DATASET/import_report.json`` and ``import_report.md`` list, per file, the poses found,
the poses unlabelled, the shapes not used and why, or why the head was refused.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from facerig.canonical.frame import axes_rotation
from facerig.errors import DatasetError, FacerigError
from facerig.fileio import atomic_path, write_bytes_atomic
from facerig.io.rigged_heads import RiggedHead, find_rigged_heads, load_mapping, load_rigged_head
from facerig.eval.datasets import BUILDER_VERSION, FORMAT
from facerig.trainer.dataset import BuildOptions, _prepare_outdir, _split_identities
from facerig.vocabulary import Vocabulary, load_vocabulary

REPORT_STEM = "import_report"
_FLOAT16_MAX = float(np.finfo(np.float16).max)
_KIND_CODE = 3  # seeds the split apart from the ICT builder's rigged (0) and unrigged (1) identities


def build_rigs_dataset(
    folder: str | Path,
    outdir: str | Path,
    *,
    mapping: str | Path | Mapping[str, str | None] | None = None,
    select: str | None = None,
    seed: int = 0,
    val_fraction: float = 0.0,
    test_fraction: float = 0.0,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Write a dataset of the rigged heads under ``folder`` (see the module docstring); returns the import report.

    Args:
        folder: searched recursively for rigged head files (:func:`facerig.io.rigged_heads.find_rigged_heads`).
        outdir: the dataset folder; must be empty or absent unless ``overwrite``.
        mapping: a mapping file or dict ``{their shape name: FACS name or None}`` applied to every head.
        select: keep only meshes whose node/prim (or an ancestor) name contains this.
        seed, val_fraction, test_fraction: the seeded split of the accepted heads.

    Returns:
        The report written to ``import_report.json``: per file, imported (sample, split, poses) or refused (why).

    Raises:
        DatasetError: no rigged head file in ``folder``, bad fractions, or every head refused (the report is
            written first).
    """
    folder, outdir = Path(folder), Path(outdir)
    if not (0 <= val_fraction and 0 <= test_fraction and val_fraction + test_fraction < 1):
        raise DatasetError("val and test fractions must be >= 0 and sum to less than 1")
    files = find_rigged_heads(folder)
    if not files:
        raise DatasetError("no rigged head files (glTF/GLB or USD) in the folder", folder)
    vocabulary = load_vocabulary()
    if isinstance(mapping, (str, Path)):
        mapping = load_mapping(mapping, vocabulary)
    _prepare_outdir(outdir, overwrite)
    started = time.perf_counter()

    heads: list[tuple[str, RiggedHead]] = []
    report: dict[str, dict[str, Any]] = {}
    from tqdm import tqdm

    for path in tqdm(files, desc="reading", unit="head", disable=not progress):
        name = path.relative_to(folder).as_posix()
        try:
            head = load_rigged_head(path, mapping, select=select, vocabulary=vocabulary)
            largest = float(np.abs(head.deltas).max())
            if largest > _FLOAT16_MAX:
                raise DatasetError(f"an offset of {largest:g} units does not fit the dataset's float16", path)
        except FacerigError as error:
            matched = getattr(error, "report", None)
            report[name] = {"status": "refused", "reason": error.reason,
                            **({"unmatched": matched.unmatched} if matched is not None else {})}
            continue
        heads.append((name, head))
        report[name] = {"status": "imported", **head.report.to_dict()}

    options = BuildOptions(seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    splits = _split_identities(len(heads), options, _KIND_CODE)
    split_of = {index: split for split, indices in splits.items() for index in indices}
    entries = []
    for index, (name, head) in enumerate(heads):
        sample = f"rig_{index:05d}"
        _write_sample(outdir / "samples" / f"{sample}.npz", head, vocabulary)
        entries.append({
            "name": sample, "kind": "rigged", "index": index, "split": split_of[index],
            "file": f"samples/{sample}.npz", "source_file": name, "vertices": int(head.mesh.n_vertices),
            "polygons": int(head.mesh.n_polygons), "meters_per_unit": head.meters_per_unit,
            "labelled_poses": int(head.labelled.sum()),
        })  # fmt: skip
        report[name].update(sample=sample, split=split_of[index])

    summary = {
        "folder": str(folder),
        "counts": {"files": len(files), "imported": len(heads), "refused": len(files) - len(heads)},
        "heads": report,
    }
    write_bytes_atomic(outdir / f"{REPORT_STEM}.json", (json.dumps(summary, indent=1) + "\n").encode())
    write_bytes_atomic(outdir / f"{REPORT_STEM}.md", report_markdown(summary).encode())
    if not heads:
        raise DatasetError(f"every rigged head was refused; see {outdir / (REPORT_STEM + '.md')}", folder)

    action_labelled = np.any([head.labelled for _, head in heads], axis=0)
    counts = Counter(f"rigged_{entry['split']}" for entry in entries)
    manifest = {
        "format": FORMAT,
        "builder_version": BUILDER_VERSION,
        "seed": seed,
        "options": {"builder": "rigs", "val_fraction": val_fraction, "test_fraction": test_fraction,
                    "select": select, "mapping": dict(mapping) if mapping else None},
        "source": {"kind": "rigged heads", "name": folder.name},
        "vocabulary_id": vocabulary.id,
        "shapes": list(vocabulary.shape_names),
        # an action is labelled in the dataset when some head has it; each sample's own mask rules
        "labelled": action_labelled.tolist() + [False] * len(vocabulary.correctives),
        "regions": [],
        "parts": [],
        "eyelid_pairs": [],
        "eyelid_sides": [],
        "units": "each sample's meters_per_unit, the file's own",
        "axes": "+Y up, face along +Z, +X the character's left (the file's axes turned by its up axis)",
        "counts": dict(sorted(counts.items())) | {"total": len(entries)},
        "identities": {"rigged": {split: [heads[i][0] for i in indices] for split, indices in splits.items()}},
        "build_seconds": round(time.perf_counter() - started, 1),
        "samples": entries,
    }
    write_bytes_atomic(outdir / "manifest.json", json.dumps(manifest, indent=1, allow_nan=False).encode())
    return summary


def _write_sample(path: Path, head: RiggedHead, vocabulary: Vocabulary) -> None:
    """One rigged head as a dataset sample (see the module docstring for the fields it lacks)."""
    mesh = head.mesh
    rotation = axes_rotation(None, None, mesh.up_axis)  # file axes -> +Y up, face along +Z
    transform = np.eye(4)
    transform[:3, :3] = rotation
    n_vertices, n_correctives = mesh.n_vertices, len(vocabulary.correctives)
    deltas = np.concatenate([head.deltas @ rotation.T.astype(np.float32),
                             np.zeros((n_correctives, n_vertices, 3), np.float32)])
    arrays = {
        "vertices": (mesh.vertices @ rotation.T).astype(np.float32),
        "face_vertex_counts": mesh.face_vertex_counts.astype(np.int32),
        "face_vertex_indices": mesh.face_vertex_indices.astype(np.int32),
        "deltas": deltas.astype(np.float16),
        "labelled": np.concatenate([head.labelled, np.zeros(n_correctives, bool)]),
        "regions": np.full(n_vertices, -1, np.int8),
        "parts": np.full(n_vertices, -1, np.int8),
        "landmarks": np.zeros(0, np.int32),
        "landmark_triangles": np.zeros(0, np.int32),
        "landmark_barycentrics": np.zeros((0, 3), np.float32),
        "eyelid_pairs": np.zeros((0, 2), np.int32),
        "transform": transform,
        "meters_per_unit": np.float64(head.meters_per_unit),
    }
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)


def export_rigged_samples(
    dataset: str | Path, outdir: str | Path, *, split: str = "test", format: str = "glb", overwrite: bool = False,
) -> list[Path]:
    """Write each rigged sample of a dataset split as a rigged file (the reverse of :func:`build_rigs_dataset`).

    A sample becomes its neutral plus one shape per pose it has a ground truth for (unlabelled poses are left
    out, not written as zeros, so a reader never takes them for "does not move"), in the dataset's axes and
    units. ``facerig eval --rigs OUTDIR`` then scores the same heads and poses as ``facerig eval --dataset``:
    held-out identities become the kind of folder a studio brings. Returns the files written, in manifest order.

    Raises:
        DatasetError: unreadable dataset, a split without rigged samples, or an OUTDIR that is not empty.
    """
    from facerig.eval.datasets import load_sample, read_manifest
    from facerig.exporters import export_rig
    from facerig.mesh import Mesh
    from facerig.rig import Rig

    from facerig.exporters import EXPORTERS

    root, outdir = Path(dataset), Path(outdir)
    if format.lower() not in EXPORTERS:  # before any folder is made
        raise DatasetError(f"unknown format {format!r}; one of {', '.join(sorted(EXPORTERS))}", outdir)
    manifest = read_manifest(root)
    entries = [e for e in manifest["samples"] if e["split"] == split and e["kind"] == "rigged"]
    if not entries:
        raise DatasetError(f"the {split!r} split has no rigged samples", root)
    if outdir.exists() and (not outdir.is_dir() or (any(outdir.iterdir()) and not overwrite)):
        raise DatasetError("output must be an empty or absent folder (pass overwrite / --force to add to it)", outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    shapes = list(manifest["shapes"])
    written = []
    for entry in entries:
        arrays = load_sample(root / entry["file"])
        labelled = np.flatnonzero(np.asarray(arrays["labelled"], bool))
        mesh = Mesh(arrays["vertices"], arrays["face_vertex_counts"], arrays["face_vertex_indices"],
                    up_axis="Y", meters_per_unit=float(arrays["meters_per_unit"]), name=entry["name"])
        rig = Rig(mesh, tuple(shapes[i] for i in labelled), arrays["deltas"][labelled].astype(np.float32),
                  metadata={"source_dataset": root.name, "split": split, "sample": entry["name"],
                            "method": "ground truth"})
        written.append(export_rig(rig, outdir / f"{entry['name']}.{format}", format=format, overwrite=overwrite))
    return written


def report_markdown(summary: dict[str, Any]) -> str:
    """The import report as Markdown: one row per file, then each imported head's unused shapes."""
    counts = summary["counts"]
    lines = [f"# Rigged heads imported from {summary['folder']}", "",
             f"{counts['imported']} of {counts['files']} files imported, {counts['refused']} refused.", "",
             "| file | status | sample | split | poses found | unlabelled poses | shapes not used |",
             "|---|---|---|---|---|---|---|"]
    for file, head in summary["heads"].items():
        if head["status"] == "refused":
            lines.append(f"| {file} | refused: {head['reason']} | | | | | |")
        else:
            lines.append(f"| {file} | imported | {head['sample']} | {head['split']} | {len(head['labelled'])} | "
                         f"{', '.join(head['unlabelled']) or '–'} | {len(head['unmatched'])} |")
    for file, head in summary["heads"].items():
        if head["status"] == "imported" and head["unmatched"]:
            lines += ["", f"## {file}: shapes not used", ""]
            lines += [f"- `{shape}`: {why}" for shape, why in head["unmatched"].items()]
    return "\n".join(lines) + "\n"
