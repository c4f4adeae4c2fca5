"""facerig's command line: a thin layer over the Python API.

Each module below attaches its commands to :data:`facerig.cli.app.app`; importing them here registers them.
"""

from __future__ import annotations

from facerig.cli.app import app, main, run

# Command modules register themselves on import. A module whose optional dependencies are missing must
# still import (it defers heavy imports into the command body).
from facerig.cli import rig as _rig  # noqa: E402,F401  rig, info, export
from facerig.cli import batch as _batch  # noqa: E402,F401  batch
from facerig.cli import data as _data  # noqa: E402,F401  data ict
from facerig.cli import train as _train  # noqa
from facerig.cli import evaluate as _evaluate  # noqa
from facerig.cli import preview as _preview  # noqa
from facerig.cli import blender as _blender  # noqa: E402,F401  blender-drivers

__all__ = ["app", "main", "run"]
