"""`facerig preview`: contact sheets decoded back and checked pixel by pixel (suzanne, hand-made shapes)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from facerig.canonical.frame import canonical_frame
from facerig.cli import run
from facerig.io import load_mesh
from facerig.render import preview
from facerig.render.png import encode_png
from facerig.render.renderer import frontal_camera
from facerig.rig import Rig

TILE = 96
SHAPES = ("BrowsUp", "LeftSideOut", "Still", "LeftLipCornerPuller_LeftLowerLipDepressor")
LIFT = 0.3  # canonical units (cranium radii)
REACH = 0.8  # canonical units: more than the span of one ring of suzanne's triangles


# ---------------------------------------------------------------------------------------------- helpers
def decode_png(data: bytes) -> np.ndarray:
    """A minimal PNG decoder, written from the specification: 8-bit grey or RGB, filters None/Sub/Up."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    width, height, depth, colour, compression, filter_method, interlace = struct.unpack(">2I5B", chunks[0][1])
    assert (depth, compression, filter_method, interlace) == (8, 0, 0, 0) and colour in (0, 2)
    channels = 3 if colour == 2 else 1
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    lines = np.frombuffer(raw, np.uint8).reshape(height, 1 + width * channels)
    out = np.zeros((height, width * channels), np.uint8)
    previous = np.zeros(width * channels, np.uint8)
    for i, (kind, line) in enumerate(zip(lines[:, 0], lines[:, 1:])):
        if kind == 0:
            row = line.copy()
        elif kind == 1:  # Sub: running sum per channel along the row
            row = np.cumsum(line.reshape(width, channels), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:  # Up
            row = line + previous
        else:
            raise AssertionError(f"filter {kind} is not implemented by this test decoder")
        out[i] = previous = row
    return out.reshape(height, width, channels) if channels == 3 else out


def covered(tile: np.ndarray) -> np.ndarray:
    """(S, S) bool: pixels showing the mesh (shaded grey never equals the bluish background)."""
    return (tile != np.array(preview.BACKGROUND, np.uint8)).any(axis=-1)


def crop(sheet: np.ndarray, origin: tuple[int, int], height: int, width: int) -> np.ndarray:
    top, left = origin
    return sheet[top : top + height, left : left + width]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The renderer's tensors are small: extra threads only contend on a busy 2-core machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def suzanne(heads_dir: Path):
    """(rig, canonical frame): suzanne with shapes made in canonical terms, then mapped to its own axes.

    BrowsUp lifts the top half (canonical y > 0) by LIFT; LeftSideOut pushes the character's left side
    (canonical x > 0.5) further left; Still and the long-named shape do not move.
    """
    mesh = load_mesh(heads_dir / "suzanne.obj")
    frame = canonical_frame(mesh)
    points = frame.to_canonical(mesh.vertices)
    canonical = np.zeros((len(SHAPES), mesh.n_vertices, 3))
    canonical[0, points[:, 1] > 0, 1] = LIFT
    canonical[1, points[:, 0] > 0.5, 0] = LIFT
    deltas = frame.deltas_from_canonical(canonical)
    return Rig(mesh, SHAPES, deltas, metadata={"canonical_frame": frame.to_dict()}), frame


@pytest.fixture(scope="module")
def sheet(suzanne, tmp_path_factory) -> tuple[np.ndarray, Path]:
    """The CLI's sheet of the suzanne rig (bundle written with Rig.save), decoded, and its bundle."""
    folder = tmp_path_factory.mktemp("preview")
    bundle = suzanne[0].save(folder / "suzanne.facerig.npz")
    out = folder / "sheet.png"
    assert run(["preview", str(bundle), "-o", str(out), "--size", str(TILE)]) == 0
    return decode_png(out.read_bytes()), bundle


# ---------------------------------------------------------------------------------------------- png
@pytest.mark.parametrize("shape", [(5, 7, 3), (1, 1, 3), (9, 4)])
def test_png_round_trips_pixels(shape: tuple[int, ...]) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_array_equal(decode_png(encode_png(pixels)), pixels)


def test_png_rejects_wrong_pixels() -> None:
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="H, W"):
        encode_png(np.zeros((2, 2, 4), np.uint8))


# ---------------------------------------------------------------------------------------------- sheet
def test_sheet_size_matches_the_grid(sheet) -> None:
    image, _ = sheet
    tiles = 1 + len(SHAPES)  # neutral first
    columns = 3  # ceil(sqrt(5))
    rows = 2
    label = 20  # font scale 1 at 96 px: two 9-pixel lines plus 2 pixels of air
    assert image.shape == (
        rows * (TILE + label) + (rows + 1) * preview.GAP,
        columns * TILE + (columns + 1) * preview.GAP,
        3,
    )
    layout = preview.sheet_layout(["neutral", *SHAPES], TILE)
    assert (layout.columns, layout.rows, layout.label_height) == (columns, rows, label) and layout.n_tiles == tiles
    assert layout.label_scale == 1 and layout.chars_per_line == 15  # (96 - 1) // 6


def test_moving_shapes_differ_from_neutral_where_they_move(sheet, suzanne) -> None:
    image, _ = sheet
    rig, frame = suzanne
    layout = preview.sheet_layout(["neutral", *SHAPES], TILE)
    tiles = [crop(image, layout.tile_origin(k), TILE, TILE).astype(int) for k in range(1 + len(SHAPES))]
    neutral, brows_up, side_out, still, long_named = tiles
    assert covered(neutral).mean() > 0.2  # the head fills a good part of its tile

    # Shapes that do not move render exactly like the neutral.
    np.testing.assert_array_equal(still, neutral)
    np.testing.assert_array_equal(long_named, neutral)

    # Where the moving boundaries (canonical y = 0, x = 0.5) and lines REACH beyond them land on the tile,
    # from the sheet's frontal camera. Pixels just past a boundary change too (faces straddling it stretch,
    # normals of the next ring turn), so "unchanged" is tested past REACH: one ring of suzanne's triangles.
    points = frame.to_canonical(rig.neutral.vertices)
    camera = frontal_camera(points, TILE, fov_degrees=preview.FOV_DEGREES, margin=preview.FRAME_MARGIN)
    front = points[:, 2].max()
    marks = torch.tensor([[0.5, 0.0, front], [0.5 - REACH, -REACH, front]], dtype=torch.float64)
    (seam_x, seam_y), (far_x, far_y) = camera.project(marks)[:, :2].tolist()

    changed = (brows_up != neutral).any(axis=-1)
    rows = np.nonzero(changed)[0]
    # most of the change is on the moving side, none of it far from there
    assert len(rows) > 100 and (rows < seam_y).mean() > 0.5 and rows.max() < far_y
    # Up is up: the lifted head reaches higher in the image.
    assert np.flatnonzero(covered(brows_up).any(axis=1))[0] < np.flatnonzero(covered(neutral).any(axis=1))[0] - 3

    changed = (side_out != neutral).any(axis=-1)
    columns = np.nonzero(changed)[1]
    # the character's left is the image's right
    assert len(columns) > 50 and (columns > seam_x).mean() > 0.5 and columns.min() > far_x
    assert np.flatnonzero(covered(side_out).any(axis=0))[-1] > np.flatnonzero(covered(neutral).any(axis=0))[-1] + 3


def test_labels_name_each_tile(sheet) -> None:
    image, _ = sheet
    names = ["neutral", *SHAPES]
    layout = preview.sheet_layout(names, TILE)
    strips = [crop(image, layout.label_origin(k), layout.label_height, TILE) for k in range(len(names))]
    for name, strip in zip(names, strips):
        ink = (strip != np.array(preview.LABEL_BACKGROUND, np.uint8)).any(axis=-1)
        colour = preview.NEUTRAL_TEXT_COLOUR if name == "neutral" else preview.TEXT_COLOUR
        assert (strip[ink] == np.array(colour, np.uint8)).all()
        # every lit font pixel of the (wrapped) name, and nothing else
        lines = preview.wrap_label(name, layout.chars_per_line)
        scale = layout.label_scale
        assert ink.sum() == sum(int(preview.text_mask(line, scale).sum()) for line in lines) > 0
    assert len(preview.wrap_label(SHAPES[-1], layout.chars_per_line)) == 2  # wrapped, not cut


def test_shapes_filter_and_default_output(sheet, tmp_path: Path) -> None:
    _, bundle = sheet
    out = tmp_path / "some.png"
    assert run(["preview", str(bundle), "-o", str(out), "--size", "64", "--shapes", "Brows*, Still"]) == 0
    image = decode_png(out.read_bytes())
    layout = preview.sheet_layout(["neutral", "BrowsUp", "Still"], 64)
    assert image.shape[:2] == layout.shape and layout.columns == 2 and layout.rows == 2

    # Without -o the sheet goes beside the bundle.
    assert run(["preview", str(bundle), "--size", "32", "--shapes", "Still", "--columns", "1"]) == 0
    beside = bundle.parent / "suzanne.preview.png"
    assert decode_png(beside.read_bytes()).shape[:2] == preview.sheet_layout(["neutral", "Still"], 32, 1).shape


def test_unknown_shape_is_one_red_line(sheet, tmp_path: Path, capsys) -> None:
    _, bundle = sheet
    out = tmp_path / "none.png"
    assert run(["preview", str(bundle), "-o", str(out), "--shapes", "Nope*"]) == 1
    assert "no shape matches 'Nope*'" in capsys.readouterr().err and not out.exists()
    assert run(["preview", str(tmp_path / "missing.facerig.npz"), "-o", str(out)]) == 1
    assert "no such rig bundle" in capsys.readouterr().err


def test_heat_map_colours_where_a_shape_moves_and_frames_the_face(sheet, tmp_path: Path) -> None:
    """--heat: moving points red (BrowsUp lifts by LIFT, past HEAT_FULL), still tiles grey; framed on the face."""
    _, bundle = sheet
    out = tmp_path / "heat.png"
    assert run(["preview", str(bundle), "-o", str(out), "--size", str(TILE), "--heat"]) == 0
    image = decode_png(out.read_bytes()).astype(int)
    layout = preview.sheet_layout(["neutral", *SHAPES], TILE)

    def red(k: int) -> np.ndarray:
        tile = crop(image, layout.tile_origin(k), TILE, TILE)
        return (tile[..., 0] - tile[..., 2] > 80) & covered(tile.astype(np.uint8))

    assert red(1).sum() > 0.05 * TILE * TILE  # BrowsUp
    assert red(0).sum() == 0 and red(1 + SHAPES.index("Still")).sum() == 0
    np.testing.assert_allclose(preview.heat_colours(np.array([0.0, preview.HEAT_FULL, 1.0])),
                               preview.HEAT_COLOURS[[0, 2, 2]])
    # the face view is closer than the whole-head view: the neutral covers more of its tile
    plain = decode_png((bundle.parent / "sheet.png").read_bytes())
    assert covered(crop(image.astype(np.uint8), layout.tile_origin(0), TILE, TILE)).sum() > covered(
        crop(plain, layout.tile_origin(0), TILE, TILE)).sum()


# ---------------------------------------------------------------------------------------------- font
def test_font_covers_names_with_distinct_glyphs() -> None:
    needed = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-."
    glyphs = {c: preview.FONT[c] for c in needed}
    assert all(g.shape == (7, 5) and g.any() for g in glyphs.values())
    assert len({g.tobytes() for g in glyphs.values()}) == len(needed)  # no two characters look alike
    unknown = preview.text_mask("é", scale=2)
    np.testing.assert_array_equal(unknown, preview.FONT["?"].repeat(2, 0).repeat(2, 1))
    assert preview.text_mask("ab", scale=3).shape == (21, preview.text_width(2, 3)) == (21, 33)


def test_wrap_label_breaks_at_underscores_then_humps() -> None:
    name = "RightLipCornerPuller_RightLowerLipDepressor"
    assert preview.wrap_label(name, 43) == [name]
    assert preview.wrap_label(name, 22) == ["RightLipCornerPuller_", "RightLowerLipDepressor"]
    assert preview.wrap_label(name, 16) == ["RightLipCorner", "Puller_Right.."]
    assert all(len(line) <= 5 for line in preview.wrap_label(name, 5))


def test_label_scale_is_the_largest_that_fits_every_name() -> None:
    short = ["neutral", "JawDrop", "LeftLipCornerPuller"]  # 19 chars: fits 256 px at scale 2 (21 a line)
    assert preview.label_scale(short, 256) == 2 and preview.chars_per_line(256, 2) == 21
    assert preview.label_scale([*short, "RightLipCornerPuller_RightLowerLipDepressor"], 256) == 1
    assert preview.label_scale(short, 96) == 1  # small tiles keep small text
    layout = preview.sheet_layout(short, 256)
    assert layout.label_height == 2 * 20 and layout.shape == (2 * (256 + 40) + 3 * 2, 2 * 256 + 3 * 2)


def test_correctives_and_lips_together_show_the_poses_they_make(suzanne) -> None:
    """A corrective's tile is its bases plus the correction (labelled A+B), LipsTogether's is with JawDrop;
    --corrections-alone (combined=False) shows the deltas alone."""
    mesh = suzanne[0].neutral
    rng = np.random.default_rng(0)
    names = ("JawDrop", "LeftLipCornerPuller", "LipsTogether", "JawDrop_LeftLipCornerPuller")
    deltas = rng.normal(size=(len(names), mesh.n_vertices, 3))
    rig = Rig(mesh, names, deltas, corrective_recipes={names[3]: names[:2]})
    combined, label = preview.shown_delta(rig, names[3])
    np.testing.assert_allclose(combined, rig.deltas[0] + rig.deltas[1] + rig.deltas[3], atol=1e-5)
    assert label == "JawDrop+LeftLipCornerPuller"
    lips, label = preview.shown_delta(rig, "LipsTogether")
    np.testing.assert_allclose(lips, rig.deltas[0] + rig.deltas[2], atol=1e-5)
    assert label == "LipsTogether+JawDrop"
    alone, label = preview.shown_delta(rig, names[3], combined=False)
    assert np.array_equal(alone, rig.deltas[3]) and label == names[3]
    assert preview.shown_delta(rig, "JawDrop")[1] == "JawDrop"
    assert preview.wrap_label("LipsTogether+JawDrop", 13) == ["LipsTogether+", "JawDrop"]
