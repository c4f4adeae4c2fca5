"""Reading a built dataset: the manifest and its samples (the format is written by :mod:`facerig.trainer.dataset`,
whose module docstring lays out every array).

Evaluation, the trainer and benchmarks read datasets; only the trainer builds them, so the reader lives here,
below both, and inference code never imports the trainer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from facerig.errors import DatasetError
from facerig.geometry import fan_triangles

__all__ = ["BUILDER_VERSION", "FORMAT", "load_sample", "read_manifest", "sample_triangles"]

FORMAT = "facerig-ict-dataset"
BUILDER_VERSION = 2  # 2: EyesLook ground truth turns the eyeballs (gaze_degrees)
_REQUIRED_KEYS = (
    "vertices", "face_vertex_counts", "face_vertex_indices", "labelled", "regions", "parts", "landmarks",
    "landmark_triangles", "landmark_barycentrics", "eyelid_pairs", "transform", "meters_per_unit",
)  # fmt: skip


def read_manifest(root: str | Path) -> dict[str, Any]:
    """The dataset's manifest, checked for format and builder version."""
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise DatasetError("no manifest.json: not a dataset, or an unfinished build", root)
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise DatasetError(f"manifest.json is unreadable ({exc})", root) from None
    if manifest.get("format") != FORMAT:
        raise DatasetError(f"not a {FORMAT} manifest", path)
    if manifest.get("builder_version", 0) > BUILDER_VERSION:
        raise DatasetError(f"made by a newer builder (version {manifest['builder_version']})", path)
    return manifest


def load_sample(path: str | Path) -> dict[str, np.ndarray]:
    """A sample's arrays (see the module docstring), read without pickles; ``deltas`` only for rigged heads."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise DatasetError(f"unreadable sample ({exc})", path) from None
    missing = [key for key in _REQUIRED_KEYS if key not in arrays]
    if missing:
        raise DatasetError(f"sample lacks {', '.join(missing)}", path)
    return arrays


def sample_triangles(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """(F, 3) int64 fan triangulation of a sample's polygons (what ``landmark_triangles`` index)."""
    return fan_triangles(arrays["face_vertex_counts"], arrays["face_vertex_indices"].astype(np.int64))
