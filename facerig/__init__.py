"""facerig: neutral head meshes in, FACS blendshape rigs out.

The Python API, in the order data flows::

    mesh = facerig.load_mesh("head.obj")          # facerig.io
    rig = facerig.rig_mesh(mesh)                  # canonicalize → operators → network → Rig
    rig.export("head.usd")                        # facerig.exporters
    facerig.rig_and_write("head.obj", "out/", formats=("usd",), method="transfer")  # rig + every output, as a set
"""

from facerig.errors import FacerigError
from facerig.mesh import Mesh
from facerig.rig import Rig
from facerig.version import __version__

__all__ = ["FacerigError", "Mesh", "Rig", "RigMethod", "load_mesh", "rig_and_write", "rig_mesh", "__version__"]

# torch and the readers load on first use, so `import facerig` (and `facerig --help`) stays fast.
_LAZY = {
    "rig_mesh": "facerig.rigging.pipeline",
    "load_mesh": "facerig.io",
    "rig_and_write": "facerig.rigging.rig_and_write",
    "RigMethod": "facerig.rigging.rig_and_write",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'facerig' has no attribute {name!r}")
