"""Contact sheets: every shape of a rig rendered on one labelled grid, to check a rig at a glance.

The neutral comes first, then each shape at weight 1 as an animator meets it (:func:`shown_delta`): a corrective
is shown as the combined pose it corrects (its bases at weight 1 plus the correction, labelled ``A+B``), and
LipsTogether as it is used, with JawDrop (``LipsTogether+JawDrop``: the lips held together while the jaw opens);
``combined=False`` shows every shape's delta alone. Every tile is rendered with
:mod:`facerig.render.renderer` from the same frontal camera in the rig's canonical frame (+Y up, looking at the face
along -Z, the character's left on the image's right), framed on the neutral, so tiles can be compared
pixel for pixel and every head sits the same way on its sheet. Shading is Lambertian from the vertex
normals of the posed mesh. The heat-map view (``heat_map=True``, ``facerig preview --heat``) frames the face
alone (:func:`face_points`) and colours each tile by how far each point moves, on one scale for every tile
(:data:`HEAT_FULL`), so an animator sees where each shape acts and whether it reaches off the face. Labels are drawn with a built-in 5x7 pixel font; names that do not fit the tile
wrap at ``_`` and then at camel-case humps onto two lines.
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from facerig.canonical.frame import CanonicalFrame, canonical_frame
from facerig.errors import ConfigError
from facerig.render.png import write_png
from facerig.render.renderer import PerspectiveCamera, frontal_camera, rasterize, shade
from facerig.rig import Rig

NEUTRAL = "neutral"
DEFAULT_TILE_SIZE = 256
MIN_TILE_SIZE = 32
# A sheet above this many pixels (400 MB of RGB) is almost certainly a typo in --size.
MAX_SHEET_PIXELS = 1 << 27
GAP = 2  # pixels between tiles
# Air around the neutral's bounding box: room for shapes that open the jaw or raise the brows.
FRAME_MARGIN = 1.15
FOV_DEGREES = 20.0  # narrow: close to orthographic, so tiles compare without perspective swelling
LABEL_LINES = 2

# Heat map: grey where a point stays, through amber to red at HEAT_FULL canonical units (5 mm on a 10 cm
# cranium) and beyond; one scale for every tile so tiles compare.
HEAT_FULL = 0.05
HEAT_COLOURS = np.array([[0.78, 0.78, 0.78], [1.0, 0.78, 0.2], [0.86, 0.1, 0.08]])
HEAT_STOPS = np.array([0.0, 0.4, 1.0])
FACE_BOX = ((-0.85, 0.85), (-1.55, 0.45), (0.3, 2.0))  # canonical box the heat-map view frames: brows to chin

BACKGROUND = (40, 42, 46)
LABEL_BACKGROUND = (24, 25, 28)
TEXT_COLOUR = (232, 232, 232)
NEUTRAL_TEXT_COLOUR = (255, 196, 72)  # the reference tile stands out

# ---------------------------------------------------------------------------------------------- font
GLYPH_WIDTH, GLYPH_HEIGHT = 5, 7
# Each glyph: 7 rows top to bottom, two hex digits per row, bit 4 the leftmost of 5 pixels. Lower-case
# descenders (g j p q y) sit one row higher, as on 5x7 character LCDs, so every glyph fits 7 rows.
_FONT_TABLE = """
A 0e1111111f1111 B 1e11111e11111e C 0e11101010110e D 1c12111111121c E 1f10101e10101f F 1f10101e101010
G 0e11101711110f H 1111111f111111 I 0e04040404040e J 0702020202120c K 11121418141211 L 1010101010101f
M 111b1515111111 N 11111915131111 O 0e11111111110e P 1e11111e101010 Q 0e11111115120d R 1e11111e141211
S 0f10100e01011e T 1f040404040404 U 1111111111110e V 11111111110a04 W 1111111515150a X 11110a040a1111
Y 1111110a040404 Z 1f01020408101f a 00000e010f110f b 1010161911111e c 00000e1010110e d 01010d1311110f
e 00000e111f100e f 0609081c080808 g 000f11110f010e h 10101619111111 i 04000c0404040e j 0200060202120c
k 10101214181412 l 0c04040404040e m 00001a15151111 n 00001619111111 o 00000e1111110e p 00001e111e1010
q 00000d130f0101 r 00001619101010 s 00000e100e011e t 08081c08080906 u 0000111111130d v 00001111110a04
w 0000111115150a x 0000110a040a11 y 000011110f010e z 00001f0204081f 0 0e11131519110e 1 040c040404040e
2 0e11010204081f 3 1f02040201110e 4 02060a121f0202 5 1f101e0101110e 6 0608101e11110e 7 1f010204080808
8 0e11110e11110e 9 0e11110f01020c _ 0000000000001f - 0000001f000000 . 00000000000c0c ? 0e110102040004
+ 0004041f040400
"""
FALLBACK_GLYPH = "?"  # drawn for characters the font lacks


def _parse_font(table: str) -> dict[str, np.ndarray]:
    """{character: (7, 5) bool} from a table of "<char> <14 hex digits>" entries, plus the space."""
    glyphs: dict[str, np.ndarray] = {" ": np.zeros((GLYPH_HEIGHT, GLYPH_WIDTH), bool)}
    for char, digits in re.findall(r"(\S) ([0-9a-f]{14})\b", table):
        rows = bytes.fromhex(digits)
        bits = np.array([[(row >> (GLYPH_WIDTH - 1 - k)) & 1 for k in range(GLYPH_WIDTH)] for row in rows])
        glyphs[char] = bits.astype(bool)
    return glyphs


FONT: dict[str, np.ndarray] = _parse_font(_FONT_TABLE)


def text_mask(text: str, scale: int = 1) -> np.ndarray:
    """(7 * scale, (6 * len(text) - 1) * scale) bool: ``text`` in the 5x7 font, one blank column between
    characters, each font pixel a ``scale`` x ``scale`` block. Characters the font lacks draw as "?"."""
    if not text:
        return np.zeros((GLYPH_HEIGHT * scale, 0), bool)
    blank = np.zeros((GLYPH_HEIGHT, 1), bool)
    columns = []
    for char in text:
        columns += [FONT.get(char, FONT[FALLBACK_GLYPH]), blank]
    mask = np.concatenate(columns[:-1], axis=1)
    return mask.repeat(scale, axis=0).repeat(scale, axis=1)


def text_width(n_chars: int, scale: int) -> int:
    """Pixel width of ``n_chars`` characters of :func:`text_mask`."""
    return max(0, (GLYPH_WIDTH + 1) * n_chars - 1) * scale


def wrap_label(text: str, max_chars: int, max_lines: int = LABEL_LINES) -> list[str]:
    """Break a shape name into at most ``max_lines`` lines of at most ``max_chars`` characters.

    Breaks after ``_`` or ``+`` first (correctives are ``Base_Base``, combined poses ``A+B``), then before
    camel-case humps, then anywhere.
    A name that still needs more lines keeps its first lines, the last one ending in "..".
    """
    if max_chars < 1:
        return []
    words = re.split(r"(?<=[_+])", text)
    pieces: list[str] = []
    for word in filter(None, words):
        if len(word) <= max_chars:
            pieces.append(word)
            continue
        for hump in filter(None, re.split(r"(?<=[a-z0-9])(?=[A-Z])", word)):
            pieces += [hump[k : k + max_chars] for k in range(0, len(hump), max_chars)]
    lines: list[str] = []
    for piece in pieces:
        if lines and len(lines[-1]) + len(piece) <= max_chars:
            lines[-1] += piece
        else:
            lines.append(piece)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = (lines[-1][: max(0, max_chars - 2)] + "..")[:max_chars]
    return lines


# ---------------------------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class SheetLayout:
    """Where each tile and its label go on a sheet.

    Tiles fill rows left to right, top to bottom; tile k is a ``tile_size`` square with its label strip
    (:attr:`label_height` pixels, text at ``label_scale`` screen pixels per font pixel) directly below, and
    ``gap`` pixels of background separate and surround them.
    """

    n_tiles: int
    columns: int
    tile_size: int
    label_scale: int
    gap: int = GAP

    @property
    def rows(self) -> int:
        return math.ceil(self.n_tiles / self.columns)

    @property
    def label_height(self) -> int:
        # LABEL_LINES lines of 7 font pixels with 2 between them, and 2 around the block
        return self.label_scale * (LABEL_LINES * (GLYPH_HEIGHT + 2) + 2)

    @property
    def chars_per_line(self) -> int:
        """Label characters that fit across a tile."""
        return chars_per_line(self.tile_size, self.label_scale)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the sheet in pixels."""
        return (
            self.rows * (self.tile_size + self.label_height) + (self.rows + 1) * self.gap,
            self.columns * self.tile_size + (self.columns + 1) * self.gap,
        )

    def tile_origin(self, k: int) -> tuple[int, int]:
        """(top, left) pixel of tile k's image."""
        row, column = divmod(k, self.columns)
        return (
            self.gap + row * (self.tile_size + self.label_height + self.gap),
            self.gap + column * (self.tile_size + self.gap),
        )

    def label_origin(self, k: int) -> tuple[int, int]:
        """(top, left) pixel of tile k's label strip (``label_height`` x ``tile_size``)."""
        top, left = self.tile_origin(k)
        return top + self.tile_size, left


def label_scale(names: Sequence[str], tile_size: int) -> int:
    """The largest font scale (at most tile_size // 96, at least 1) at which every name wraps into
    :data:`LABEL_LINES` lines without being cut."""
    for scale in range(max(1, tile_size // 96), 1, -1):
        chars = chars_per_line(tile_size, scale)
        if all(len(wrap_label(n, chars, max_lines=LABEL_LINES + 1)) <= LABEL_LINES for n in names):
            return scale
    return 1


def chars_per_line(tile_size: int, scale: int) -> int:
    """Characters of :func:`text_mask` at ``scale`` that fit across a tile, leaving one font pixel each side."""
    return (tile_size - 2 * scale + scale) // ((GLYPH_WIDTH + 1) * scale)


# ---------------------------------------------------------------------------------------------- shapes
def select_shapes(rig: Rig, patterns: Sequence[str] | None = None) -> list[str]:
    """The rig's shape names matching any of ``patterns`` (exact names or shell patterns such as
    ``Left*``), in the rig's order; all shapes when ``patterns`` is None.

    Raises:
        ConfigError: a pattern matches no shape of the rig.
    """
    if patterns is None:
        return list(rig.shape_names)
    chosen: set[str] = set()
    for pattern in patterns:
        matches = [name for name in rig.shape_names if fnmatch.fnmatchcase(name, pattern)]
        if not matches:
            examples = ", ".join(rig.shape_names[:5]) + (", ..." if rig.n_shapes > 5 else "")
            raise ConfigError(f"no shape matches {pattern!r}; the rig has {rig.n_shapes} shapes ({examples})")
        chosen.update(matches)
    return [name for name in rig.shape_names if name in chosen]


def rig_frame(rig: Rig) -> CanonicalFrame:
    """The rig's canonical frame: the one it recorded when rigged (which honours ``--up``/``--front``),
    else fitted to its neutral."""
    recorded = rig.metadata.get("canonical_frame")
    return CanonicalFrame.from_dict(recorded) if recorded is not None else canonical_frame(rig.neutral)


# ---------------------------------------------------------------------------------------------- render
# Shapes that only make sense on top of another pose: shown with it (see the module docstring).
SHOWN_WITH = {"LipsTogether": ("JawDrop",)}


def shown_delta(rig: Rig, name: str, combined: bool = True) -> tuple[np.ndarray, str]:
    """The (V, 3) delta a tile shows for shape ``name`` and its label (see the module docstring)."""
    if not combined:
        return rig.delta(name), name
    partners = rig.corrective_recipes.get(name) or tuple(p for p in SHOWN_WITH.get(name, ()) if p in rig.shape_names)
    if not partners:
        return rig.delta(name), name
    delta = rig.delta(name) + sum(rig.delta(p) for p in partners)
    label = "+".join(partners) if name in rig.corrective_recipes else "+".join((name, *partners))
    return delta, label


def contact_sheet(
    rig: Rig,
    shapes: Sequence[str] | None = None,
    tile_size: int = DEFAULT_TILE_SIZE,
    columns: int | None = None,
    heat_map: bool = False,
    combined: bool = True,
) -> np.ndarray:
    """Render the neutral and each shape at weight 1 onto one labelled grid.

    Args:
        rig: the rig to show.
        shapes: shape names or shell patterns (see :func:`select_shapes`); None shows every shape.
        tile_size: pixels per tile side.
        columns: tiles per row; default ``ceil(sqrt(tiles))``, a near-square sheet.
        heat_map: frame the face only and colour each point by its motion (:func:`heat_colours`).
        combined: show correctives as the poses they correct and LipsTogether with JawDrop (:func:`shown_delta`).

    Returns:
        (H, W, 3) uint8 RGB with H, W from :class:`SheetLayout` (see :func:`sheet_layout`).

    Raises:
        ConfigError: a pattern matches no shape, or the size or column count is out of range.
        MeshLoadError: the neutral has no surface to frame.
    """
    names = [NEUTRAL] + select_shapes(rig, shapes)
    layout = sheet_layout(names, tile_size, columns)
    frame = rig_frame(rig)
    neutral = frame.to_canonical(rig.neutral.vertices)  # (V, 3) float64
    framed = neutral[face_points(neutral)] if heat_map else neutral
    camera = frontal_camera(framed if len(framed) else neutral, tile_size, fov_degrees=FOV_DEGREES,
                            margin=FRAME_MARGIN)
    faces = torch.from_numpy(np.array(rig.neutral.triangles, np.int64))

    sheet = np.empty((*layout.shape, 3), np.uint8)
    sheet[:] = BACKGROUND
    for k, name in enumerate(names):
        # deltas are in the mesh's units and axes: pose first, then map the posed points to canonical
        delta, label = (None, NEUTRAL) if name == NEUTRAL else shown_delta(rig, name, combined)
        posed = neutral if delta is None else frame.to_canonical(rig.neutral.vertices + delta)
        albedo = heat_colours(np.linalg.norm(posed - neutral, axis=1)) if heat_map else None
        top, left = layout.tile_origin(k)
        sheet[top : top + tile_size, left : left + tile_size] = render_tile(posed, faces, camera, albedo)
        top, left = layout.label_origin(k)
        colour = NEUTRAL_TEXT_COLOUR if name == NEUTRAL else TEXT_COLOUR
        lines = wrap_label(label, layout.chars_per_line)
        label = _draw_label(lines, layout.label_scale, tile_size, layout.label_height, colour)
        sheet[top : top + layout.label_height, left : left + tile_size] = label
    return sheet


def sheet_layout(names: Sequence[str], tile_size: int, columns: int | None = None) -> SheetLayout:
    """The :class:`SheetLayout` :func:`contact_sheet` uses for tiles labelled ``names`` (neutral included).

    Raises:
        ConfigError: ``tile_size`` below :data:`MIN_TILE_SIZE`, ``columns`` below 1, or a sheet larger than
            :data:`MAX_SHEET_PIXELS`.
    """
    if tile_size < MIN_TILE_SIZE:
        raise ConfigError(f"tile size must be at least {MIN_TILE_SIZE} pixels, got {tile_size}")
    if columns is not None and columns < 1:
        raise ConfigError(f"columns must be at least 1, got {columns}")
    n = len(names)
    columns = min(columns or math.ceil(math.sqrt(n)), n)
    layout = SheetLayout(n, columns, tile_size, label_scale(names, tile_size))
    height, width = layout.shape
    if height * width > MAX_SHEET_PIXELS:
        raise ConfigError(
            f"a {width} x {height} sheet is too large ({n} tiles of {tile_size} px); use a smaller --size"
        )
    return layout


def face_points(canonical_vertices: np.ndarray) -> np.ndarray:
    """(V,) bool: the points of a canonical head inside :data:`FACE_BOX` (what the heat-map view frames)."""
    inside = np.ones(len(canonical_vertices), bool)
    for axis, (low, high) in enumerate(FACE_BOX):
        inside &= (canonical_vertices[:, axis] >= low) & (canonical_vertices[:, axis] <= high)
    return inside


def heat_colours(motion: np.ndarray) -> np.ndarray:
    """(V, 3) float64 RGB in [0, 1] for (V,) motion lengths in canonical units: grey (still) to red (HEAT_FULL)."""
    t = np.clip(np.asarray(motion, np.float64) / HEAT_FULL, 0.0, 1.0)
    return np.stack([np.interp(t, HEAT_STOPS, HEAT_COLOURS[:, c]) for c in range(3)], axis=1)


def render_tile(vertices: np.ndarray, faces: torch.Tensor, camera: PerspectiveCamera,
                albedo: np.ndarray | None = None) -> np.ndarray:
    """One shaded tile.

    Args:
        vertices: (V, 3) canonical positions of the posed mesh.
        faces: (F, 3) int64 triangles.
        camera: :class:`facerig.render.renderer.PerspectiveCamera` with a square ``image_size``.
        albedo: (V, 3) vertex colours in [0, 1]; light grey when None.

    Returns:
        (S, S, 3) uint8 RGB, :data:`BACKGROUND` where no surface is seen.
    """
    with torch.no_grad():
        points = torch.as_tensor(vertices, dtype=torch.float64)
        screen = camera.project(points)
        fragments = rasterize(screen, faces, camera.image_size)
        colours = None if albedo is None else torch.as_tensor(albedo, dtype=torch.float64)
        rgb = shade(fragments, faces, points, screen, camera, albedo=colours)  # (S, S, 3) in [0, 1]
        mask = fragments.mask.numpy()
    tile = np.empty((*camera.image_size, 3), np.uint8)
    tile[:] = BACKGROUND
    tile[mask] = np.round(rgb.clamp(0.0, 1.0).numpy()[mask] * 255.0).astype(np.uint8)
    return tile


def _draw_label(lines: list[str], scale: int, width: int, height: int, colour: tuple[int, int, int]) -> np.ndarray:
    """(height, width, 3) uint8 label strip with ``lines`` centred on :data:`LABEL_BACKGROUND`."""
    strip = np.empty((height, width, 3), np.uint8)
    strip[:] = LABEL_BACKGROUND
    line_height = (GLYPH_HEIGHT + 2) * scale
    top = (height - len(lines) * line_height + 2 * scale) // 2
    for k, line in enumerate(lines):
        mask = text_mask(line, scale)[:, :width]
        left = (width - mask.shape[1]) // 2
        row = top + k * line_height
        strip[row : row + mask.shape[0], left : left + mask.shape[1]][mask] = colour
    return strip


def write_contact_sheet(
    rig: Rig,
    path: str | Path,
    shapes: Sequence[str] | None = None,
    tile_size: int = DEFAULT_TILE_SIZE,
    columns: int | None = None,
    heat_map: bool = False,
    combined: bool = True,
) -> Path:
    """Render :func:`contact_sheet` and write it to ``path`` as a PNG, atomically."""
    return write_png(path, contact_sheet(rig, shapes, tile_size, columns, heat_map=heat_map, combined=combined))
