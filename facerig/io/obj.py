"""Wavefront OBJ reader: positions, face-varying UVs, polygons of any size, o/g/usemtl groups.

Speed matters here (ICT heads are 27k vertices and batch runs load thousands), so nothing walks the file
line by line in Python: lines are classified by their first bytes with numpy, the bytes of each kind are
gathered into one buffer and parsed by one ``np.fromstring`` call; byte masks count values per line and
check face-corner syntax. Only error reporting looks at single lines. Normals (``vn``), lines (``l``),
points (``p``), smoothing groups and materials are not needed by facerig and are skipped.
"""

from __future__ import annotations

import re
import warnings as _warnings

import numpy as np

from facerig.errors import MeshLoadError
from facerig.io._common import (
    LoadLimits,
    MeshSource,
    TEXT_PARSE_BYTES_PER_BYTE,
    Source,
    assemble_mesh,
    check_cost,
    read_source,
    reject_binary,
)
from facerig.mesh import Mesh

_NL, _SPACE, _TAB, _SLASH, _HASH = (ord(c) for c in "\n \t/#")


_MAX_RUNS = 10_000  # runs of selected lines gathered by slicing (a byte mask past that)


def _running_count(mask: np.ndarray, dtype: type = np.int32) -> np.ndarray:
    """Inclusive running count of the True entries of a bool array: ``np.cumsum(mask, dtype=dtype)``, summed
    through an int8 view (numpy's cumsum casts bool to int several times slower: 0.4 s on a 25 MB file)."""
    return np.cumsum(mask.view(np.int8), dtype=dtype)


def load_obj(source: MeshSource, limits: LoadLimits | None = None) -> Mesh:
    """Read an OBJ file (path or bytes) into a Mesh, keeping its polygons, UVs and groups.

    Faces may be written ``v``, ``v/vt``, ``v//vn`` or ``v/vt/vn``, with 1-based or negative (relative)
    indices. Groups come from ``o``/``g`` lines, or from ``usemtl`` when the file has neither. UVs are
    kept only when every face has them (otherwise they are dropped with a warning). OBJ states no up
    axis or unit, so those stay None.

    Raises:
        MeshLoadError: unreadable, binary, malformed or empty input, or over ``limits``.
    """
    limits = limits or LoadLimits()
    src = read_source(source, limits)
    reject_binary(src.data, src.label, "OBJ")
    check_cost(limits, src.label, parse_bytes=len(src.data) * TEXT_PARSE_BYTES_PER_BYTE)
    return _parse(src, limits)


# ---------------------------------------------------------------------------------------------- lines
class _Lines:
    """The file as one byte array with per-line bookkeeping (all numpy, no per-line Python objects)."""

    def __init__(self, data: bytes) -> None:
        data = data.removeprefix(b"\xef\xbb\xbf")
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        data = data.replace(b"\\\n", b" ")  # a trailing backslash continues the line
        if data[:1] in (b" ", b"\t") or b"\n " in data or b"\n\t" in data:
            data = re.sub(rb"(?m)^[ \t]+", b"", data)
        self.buf = np.frombuffer(data, np.uint8)
        self.starts = np.concatenate([[0], np.flatnonzero(self.buf == _NL) + 1])  # (L,) first byte of each line
        # Newline bytes belong to the line they end. (Per-line lengths, not a line index per byte: an int32 per
        # byte is 100 MB for a 420k-vertex head, and fresh memory costs as much as the parsing.)
        self.lengths = np.diff(self.starts, append=len(self.buf))
        # Keywords and comments get blanked here before numbers are parsed; one more newline ends the last line.
        self.work = np.append(self.buf, np.uint8(_NL))
        self._hashes = np.flatnonzero(self.buf == _HASH)

    def _blank_comments(self, mask: np.ndarray) -> None:
        """Blank ``# ...`` tails, but only when a selected line has one (header comments are the norm)."""
        if not len(self._hashes) or not mask[np.searchsorted(self.starts, self._hashes, side="right") - 1].any():
            return
        hashes = _running_count(self.buf == _HASH)
        before_line = np.concatenate([[0], hashes])[self.starts]
        in_comment = (hashes - np.repeat(before_line, self.lengths) > 0) & (self.buf != _NL)
        self.work[:-1][in_comment] = _SPACE
        self._hashes = self._hashes[:0]

    def keyword(self, word: bytes) -> np.ndarray:
        """(L,) bool: lines whose first token is exactly ``word``."""
        mask = np.ones(len(self.starts), bool)
        for k, byte in enumerate(word):
            mask &= self._byte_at(self.starts + k) == byte
        after = self._byte_at(self.starts + len(word))
        return mask & ((after == _SPACE) | (after == _TAB) | (after == _NL) | (after == 0))

    def _byte_at(self, positions: np.ndarray) -> np.ndarray:
        """The file's bytes at ``positions``, 0 past its end (without a padded copy of the whole file)."""
        inside = positions < len(self.buf)
        return np.where(inside, self.buf.take(np.where(inside, positions, 0)), 0).astype(np.uint8)

    def text(self, mask: np.ndarray, keyword_length: int) -> bytes:
        """The selected lines, newline-terminated, with their keyword blanked out."""
        self._blank_comments(mask)
        for k in range(keyword_length):
            self.work[self.starts[mask] + k] = _SPACE
        # Selected lines come in runs (the v block, the f blocks): copy each run's bytes once, with the final
        # newline; a file that interleaves its line kinds line by line takes a byte mask instead.
        edges = np.flatnonzero(np.diff(np.concatenate([[False], mask, [False]]).view(np.int8)))
        first, end = edges[::2], edges[1::2]
        if len(first) > _MAX_RUNS:
            return self.work[np.repeat(np.append(mask, True), np.append(self.lengths, 1))].tobytes()
        ends = np.append(self.starts, len(self.buf))[end]
        view = memoryview(self.work)
        return b"".join([view[a:b] for a, b in zip(self.starts[first].tolist(), ends.tolist())] + [b"\n"])

    def byte_mask(self, mask: np.ndarray) -> np.ndarray:
        """(bytes,) bool: the bytes of the lines ``mask`` (L,) selects, newlines included."""
        return np.repeat(mask, self.lengths)

    def line_text(self, index: int) -> str:
        end = self.starts[index + 1] - 1 if index + 1 < len(self.starts) else len(self.buf)
        return self.buf[self.starts[index] : end].tobytes().decode("latin-1")


def _tokens_per_line(text: bytes, n_lines: int) -> tuple[np.ndarray, np.ndarray]:
    """For newline-terminated ``text``: tokens on each line (n_lines,) and the line of each token."""
    if n_lines == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    buf = np.frombuffer(text, np.uint8)
    blank = buf == _NL  # masks combined in place: each is as large as the text
    line_starts = np.concatenate([[0], np.flatnonzero(blank)[: n_lines - 1] + 1])
    blank |= buf == _SPACE
    blank |= buf == _TAB
    start = np.empty_like(blank)  # a token starts at a non-blank byte after a blank one (or at the text's start)
    start[0] = not blank[0]
    np.greater(blank[:-1], blank[1:], out=start[1:])
    del blank
    # Tokens per line from the token positions and the line starts: no count per byte (a cumsum or a reduceat
    # over the text would hold 4-8 bytes per byte).
    tokens = np.flatnonzero(start)
    del start
    counts = np.diff(np.searchsorted(tokens, np.append(line_starts, len(buf))))
    return counts, np.repeat(np.arange(n_lines, dtype=np.int32), counts)


def _numbers(text: bytes, dtype: type, expected: int) -> np.ndarray | None:
    """Parse whitespace-separated numbers in C; None when any token is not a number of that type."""
    if expected == 0:
        return np.zeros(0, dtype)
    with _warnings.catch_warnings():
        # numpy reports unparsable text with a DeprecationWarning (a ValueError in later versions).
        _warnings.simplefilter("error", DeprecationWarning)
        try:
            values = np.fromstring(text, dtype=dtype, sep=" ")
        except (DeprecationWarning, ValueError):
            return None
    return values if len(values) == expected else None


# ---------------------------------------------------------------------------------------------- parsing
def _parse(src: Source, limits: LoadLimits) -> Mesh:
    lines = _Lines(src.data)
    is_v, is_vt, is_f = lines.keyword(b"v"), lines.keyword(b"vt"), lines.keyword(b"f")
    n_vertices = int(is_v.sum())
    if n_vertices == 0:
        raise MeshLoadError("no vertex ('v') lines: not an OBJ mesh", src.label)
    # Every face has at least 3 corners: bound the cost before the faces are parsed.
    check_cost(limits, src.label, n_vertices=n_vertices, n_corners=3 * int(is_f.sum()),
               parse_bytes=len(src.data) * TEXT_PARSE_BYTES_PER_BYTE)  # fmt: skip
    # Vertices first: a file cut inside its vertex block should say so, not just "no faces".
    vertices = _parse_rows(src, lines, is_v, "v", min_values=3, n_values=3)
    if not is_f.any():
        raise MeshLoadError(f"{n_vertices:,} vertices but no faces ('f' lines): a point cloud is not a mesh", src.label)
    uvs = _parse_rows(src, lines, is_vt, "vt", min_values=1, n_values=2) if is_vt.any() else None

    f_lines = np.flatnonzero(is_f)
    counts, v_raw, vt_raw, warnings = _parse_faces(src, lines, is_f)
    corner_lines = np.repeat(f_lines, counts)
    # Negative indices count back from the last element defined above the face's own line.
    corners = _resolve(src, v_raw, _running_count(is_v, np.int64)[corner_lines], n_vertices, "vertex", corner_lines)
    uv_indices = None
    if vt_raw is not None:
        n_uvs = 0 if uvs is None else len(uvs)
        uv_indices = _resolve(src, vt_raw, _running_count(is_vt, np.int64)[corner_lines], n_uvs, "texture", corner_lines)
    else:
        uvs = None
    groups, names = _face_groups(lines, f_lines)
    return assemble_mesh(
        src, vertices, counts, corners, uvs=uvs, uv_indices=uv_indices, groups=groups, group_names=names,
        warnings=warnings,
    )


def _parse_rows(
    src: Source, lines: _Lines, mask: np.ndarray, keyword: str, *, min_values: int, n_values: int
) -> np.ndarray:
    """(R, n_values) float64 from lines like ``v x y z [w]``; missing optional values are 0, extras ignored."""
    line_index = np.flatnonzero(mask)
    text = lines.text(mask, len(keyword))
    given, _ = _tokens_per_line(text, len(line_index))
    short = np.flatnonzero(given < min_values)
    if len(short):
        row = short[0]
        raise MeshLoadError(
            f"line {line_index[row] + 1}: '{keyword}' needs at least {min_values} values, got {given[row]}"
            " (truncated file?)",
            src.label,
        )
    values = _numbers(text, np.float64, int(given.sum()))
    if values is None:
        _raise_first_bad_number(src, lines, line_index, float)
    if (given == n_values).all():  # the usual file: the values are the rows already
        return values.reshape(-1, n_values)
    first = np.cumsum(given) - given
    picks = first[:, None] + np.minimum(np.arange(n_values), given[:, None] - 1)
    out = values[picks]
    out[np.arange(n_values) >= given[:, None]] = 0.0  # e.g. "vt u" has no v
    return out


def _parse_faces(
    src: Source, lines: _Lines, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[str]]:
    """Corner counts (P,), raw vertex indices (N,), raw texture indices (N,) or None, and warnings."""
    f_lines = np.flatnonzero(mask)
    text = lines.text(mask, 1)
    counts, face_of_corner = _tokens_per_line(text, len(f_lines))
    short = np.flatnonzero(counts < 3)
    if len(short):
        face = short[0]
        raise MeshLoadError(
            f"line {f_lines[face] + 1}: a face needs at least 3 corners, got {counts[face]} (truncated file?)",
            src.label,
        )
    n_corners = int(counts.sum())
    if b"/" not in text:
        v_raw = _numbers(text, np.int64, n_corners)
        if v_raw is None:
            _raise_first_bad_number(src, lines, f_lines, int)
        return counts, v_raw, None, []

    fields, has_vt = _corner_layout(src, lines, text, n_corners, f_lines, face_of_corner)
    numbers = _numbers(text.replace(b"//", b" ").replace(b"/", b" "), np.int64, int(fields.sum()))
    if numbers is None:
        _raise_first_bad_number(src, lines, f_lines, int)
    first_field = np.cumsum(fields) - fields
    v_raw = numbers[first_field]

    vt_per_face = np.bincount(face_of_corner, weights=has_vt, minlength=len(counts)).astype(np.int64)
    mixed = np.flatnonzero((vt_per_face != 0) & (vt_per_face != counts))
    if len(mixed):
        raise MeshLoadError(
            f"line {f_lines[mixed[0]] + 1}: some corners of the face have texture indices and some do not", src.label
        )
    if not has_vt.any():
        return counts, v_raw, None, []
    if not has_vt.all():
        without = int((vt_per_face == 0).sum())
        return counts, v_raw, None, [f"UVs dropped: {without:,} of {len(counts):,} faces have no texture indices"]
    return counts, v_raw, numbers[first_field + 1], []


def _corner_layout(
    src: Source, lines: _Lines, text: bytes, n_corners: int, f_lines: np.ndarray, face_of_corner: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per face corner: how many index fields it has (N,), and whether one is a texture index (N,).

    Valid corners are ``v``, ``v/vt``, ``v//vn`` and ``v/vt/vn``. Anything else (a trailing slash from a
    truncated line, ``1///2``) is an error, found with byte masks instead of a per-corner loop.
    """
    buf = np.frombuffer(text, np.uint8)
    blank = (buf == _SPACE) | (buf == _TAB) | (buf == _NL)
    corner_of_byte = _running_count(~blank & np.concatenate([[True], blank[:-1]])) - 1
    slash = buf == _SLASH
    before = np.concatenate([[True], blank[:-1]])
    after = np.concatenate([blank[1:], [True]])
    pair = np.concatenate([slash[:-1] & slash[1:], [False]])  # the first slash of a "//"
    n_slash = np.bincount(corner_of_byte[slash], minlength=n_corners)
    n_pair = np.bincount(corner_of_byte[pair], minlength=n_corners)
    at_edge = np.bincount(corner_of_byte[slash & (before | after)], minlength=n_corners)
    bad = (n_slash > 2) | (at_edge > 0) | ((n_pair > 0) & (n_slash != 2))
    if bad.any():
        corner = int(np.flatnonzero(bad)[0])
        line = int(f_lines[face_of_corner[corner]])
        raise MeshLoadError(f"line {line + 1}: malformed face {lines.line_text(line)!r} (truncated file?)", src.label)
    has_vt = (n_slash == 1) | ((n_slash == 2) & (n_pair == 0))
    return 1 + n_slash - n_pair, has_vt


def _resolve(
    src: Source, raw: np.ndarray, defined_above: np.ndarray, total: int, what: str, corner_lines: np.ndarray
) -> np.ndarray:
    """0-based indices from OBJ's 1-based (positive) or relative (negative) ones, range-checked."""
    index = np.where(raw > 0, raw - 1, raw + defined_above)
    bad = np.flatnonzero((raw == 0) | (index < 0) | (index >= total))
    if len(bad):
        k = bad[0]
        reason = "is invalid (OBJ indices start at 1)" if raw[k] == 0 else f"is out of range ({total:,} defined)"
        raise MeshLoadError(f"line {corner_lines[k] + 1}: {what} index {raw[k]} {reason}", src.label)
    return index


def _raise_first_bad_number(src: Source, lines: _Lines, line_index: np.ndarray, kind: type) -> None:
    """Raise for the first token on the given lines (0-based) that is not a number of ``kind``."""
    for index in line_index:
        for token in lines.line_text(index).split("#", 1)[0].split()[1:]:
            for field in token.split("/"):
                if not field and kind is int:
                    continue  # the empty middle of "v//vn"; other layouts were checked before this
                try:
                    if "_" in field:  # Python reads "1_000"; OBJ readers (and numpy) do not
                        raise ValueError(field)
                    kind(field)
                except ValueError:
                    raise MeshLoadError(f"line {index + 1}: cannot read {token!r} as a number", src.label) from None
    raise MeshLoadError("a number could not be read", src.label)


def _face_groups(lines: _Lines, f_lines: np.ndarray) -> tuple[np.ndarray | None, list[str]]:
    """(P,) group index per face and the group names, from o/g lines (or usemtl when there are none)."""
    is_group = lines.keyword(b"o") | lines.keyword(b"g")
    if not is_group.any():
        is_group = lines.keyword(b"usemtl")
    if not is_group.any():
        return None, []
    group_lines = np.flatnonzero(is_group)
    # All group lines in one buffer, split once; a dict keeps files with 100k group lines linear.
    rows = lines.buf[lines.byte_mask(is_group)].tobytes().split(b"\n")[: len(group_lines)]
    ids = {"default": 0}  # faces above the first group line
    group_of_line = []
    for row in rows:
        parts = row.split(b"#", 1)[0].split(None, 1)
        name = parts[1].strip().decode("utf-8", "replace") if len(parts) > 1 else "default"
        group_of_line.append(ids.setdefault(name, len(ids)))
    names = list(ids)
    above = np.searchsorted(group_lines, f_lines) - 1  # the last group line above each face, -1 if none
    groups = np.where(above < 0, 0, np.asarray(group_of_line)[np.maximum(above, 0)])
    return groups, names


LOADERS = {"obj": load_obj}


def write_obj(mesh: Mesh, path: str | Path) -> Path:
    """Write ``mesh`` as OBJ (vertices, face-varying UVs, polygons, one ``g`` per polygon group), atomically."""
    from facerig.fileio import write_bytes_atomic

    lines = [f"# written by facerig: {mesh.n_vertices} vertices, {mesh.n_polygons} polygons"]
    lines += [f"v {x:.7g} {y:.7g} {z:.7g}" for x, y, z in mesh.vertices]
    if mesh.uvs is not None:
        lines += [f"vt {u:.7g} {v:.7g}" for u, v in mesh.uvs]
    corners = mesh.face_vertex_indices + 1
    uv_corners = mesh.uv_indices + 1 if mesh.uv_indices is not None else None
    current_group = -1
    for polygon, (start, count) in enumerate(zip(mesh.polygon_starts, mesh.face_vertex_counts)):
        group = int(mesh.polygon_groups[polygon])
        if group != current_group and len(mesh.group_names) > 1:
            lines.append(f"g {mesh.group_names[group]}")
            current_group = group
        span = slice(start, start + count)
        if uv_corners is None:
            lines.append("f " + " ".join(str(i) for i in corners[span]))
        else:
            lines.append("f " + " ".join(f"{i}/{t}" for i, t in zip(corners[span], uv_corners[span])))
    return write_bytes_atomic(path, ("\n".join(lines) + "\n").encode())
