"""Length units: the names users pass (``--units cm``), and the guess made when a file states none.

OBJ and PLY carry no unit; glTF is metres by definition; USD and FBX state theirs. When the file says
nothing, a human head is about 0.3 m tall, so the common unit that makes the mesh's largest extent
closest to that (in log scale) is taken: ICT-FaceKit (34 units tall) resolves to centimetres, a
MakeHuman head (2.4 units) to decimetres, a 0.3-unit head to metres. Inches and feet are accepted
from the user but never guessed: they sit too close to centimetres and decimetres to tell apart by size.
"""

from __future__ import annotations

import numpy as np

from facerig.errors import ConfigError

UNITS_M: dict[str, float] = {"m": 1.0, "dm": 0.1, "cm": 0.01, "mm": 0.001, "in": 0.0254, "ft": 0.3048}
GUESSED_UNITS: tuple[str, ...] = ("m", "dm", "cm", "mm")
HEAD_SIZE_M = 0.3


def parse_units(name: str) -> float:
    """Metres per unit of a unit name (m, dm, cm, mm, in, ft; any case).

    Raises:
        ConfigError: an unknown name (the message lists the known ones).
    """
    key = name.strip().lower()
    if key not in UNITS_M:
        raise ConfigError(f"unknown unit {name!r}; use one of {', '.join(UNITS_M)}")
    return UNITS_M[key]


def unit_name(meters_per_unit: float) -> str:
    """``"cm"`` for 0.01 and so on; other values as ``"0.05 m"``."""
    for name, meters in UNITS_M.items():
        if np.isclose(meters_per_unit, meters, rtol=1e-6, atol=0.0):
            return name
    return f"{meters_per_unit:g} m"


def infer_meters_per_unit(vertices: np.ndarray) -> float:
    """The guessed unit (metres per unit) that makes a head of these (V, 3) positions about 0.3 m tall."""
    extent = float(np.ptp(vertices, axis=0).max())
    if extent <= 0.0:
        return 1.0
    return min((UNITS_M[u] for u in GUESSED_UNITS), key=lambda unit: abs(np.log(extent * unit / HEAD_SIZE_M)))


def resolve_meters_per_unit(meters_per_unit: float | None, vertices: np.ndarray) -> tuple[float, bool]:
    """``(metres per unit, guessed?)``: the stated unit, else :func:`infer_meters_per_unit`'s guess."""
    if meters_per_unit is not None:
        return float(meters_per_unit), False
    return infer_meters_per_unit(vertices), True
