"""facerig: neutral head meshes in, FACS blendshape rigs out.

The Python API, in the order data flows::

    mesh = facerig.load_mesh("head.obj")          # facerig.io
    rig = facerig.rig_mesh(mesh)                  # canonicalize → operators → network → Rig
    rig.export("head.usd")                        # facerig.exporters
"""

from facerig.errors import FacerigError
from facerig.mesh import Mesh
from facerig.rig import Rig

__version__ = "0.1.0"

__all__ = ["FacerigError", "Mesh", "Rig", "__version__"]
