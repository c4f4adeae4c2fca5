"""The one error family facerig raises for expected failures.

Library code raises a :class:`FacerigError` subclass with a message that names the file (when there is
one) and the problem. The CLI maps every ``FacerigError`` to one red line and exit code 1; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class FacerigError(Exception):
    """Base class of every expected facerig failure."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class MeshLoadError(FacerigError):
    """A mesh file is missing, unreadable, malformed, empty, too large or not a mesh."""


class VocabularyError(FacerigError):
    """A pose vocabulary file is malformed or names an unknown pose."""


class ModelError(FacerigError):
    """A packaged model is missing, corrupt or incompatible."""


class BundleError(FacerigError):
    """A ``.facerig.npz`` rig bundle is corrupt, incomplete or from a newer facerig."""


class ExportError(FacerigError):
    """A rig could not be written in the requested format."""


class DatasetError(FacerigError):
    """A training data source or dataset is missing pieces or malformed."""


class ConfigError(FacerigError):
    """A configuration file or option is invalid."""


class BatchError(FacerigError):
    """A batch input is unsafe or cannot be mapped to its own output (symlink out of the root, name clash)."""


class OutputError(FacerigError):
    """An output cannot go where it was asked: onto an input, outside the output folder, into a folder that is
    a file or read-only, or into an output folder another run is writing."""
