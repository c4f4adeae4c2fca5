"""PLY reader (ascii, binary little- and big-endian): positions, polygons of any size, per-vertex UVs.

A small parser of our own: the header is text, the body is read element by element with numpy. Vertex
properties x/y/z are required; UVs come from s/t, u/v, texture_u/texture_v or texture_s/texture_t.
Faces come from the ``face`` element's ``vertex_indices`` (or ``vertex_index``) list. Other elements
(edges, materials, ...) are skipped. PLY states no up axis or unit, so those stay None.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass

import numpy as np

from facerig.errors import MeshLoadError
from facerig.io._common import (
    TEXT_PARSE_BYTES_PER_BYTE,
    LoadLimits,
    MeshSource,
    Source,
    assemble_mesh,
    check_cost,
    read_source,
)
from facerig.mesh import Mesh

_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_UV_NAMES = (("s", "t"), ("u", "v"), ("texture_u", "texture_v"), ("texture_s", "texture_t"))
_FACE_LISTS = ("vertex_indices", "vertex_index")
_MAX_HEADER = 1 << 20  # a real header is a few hundred bytes; this bounds the search for end_header


@dataclass(frozen=True)
class _Property:
    name: str
    dtype: str  # numpy type code without byte order ("f4")
    count_dtype: str | None = None  # set for list properties: the type of the length prefix


@dataclass(frozen=True)
class _Element:
    name: str
    count: int
    properties: tuple[_Property, ...]


def load_ply(source: MeshSource, limits: LoadLimits | None = None) -> Mesh:
    """Read a PLY file (path or bytes) into a Mesh, keeping its polygons and per-vertex UVs.

    Per-vertex UVs become face-varying ones with ``uv_indices == face_vertex_indices``.

    Raises:
        MeshLoadError: not a PLY file, malformed or truncated header/body, missing x/y/z or faces,
            or over ``limits``.
    """
    limits = limits or LoadLimits()
    src = read_source(source, limits)
    fmt, elements, body_start = _parse_header(src)
    vertex = next((e for e in elements if e.name == "vertex"), None)
    if vertex is None or vertex.count == 0:
        raise MeshLoadError("no 'vertex' element in the header", src.label)
    names = {p.name for p in vertex.properties if p.count_dtype is None}
    if not {"x", "y", "z"} <= names:
        raise MeshLoadError("the vertex element has no x, y, z properties", src.label)
    face = next((e for e in elements if e.name == "face"), None)
    if face is None or face.count == 0:
        raise MeshLoadError(f"{vertex.count:,} vertices but no faces: a point cloud is not a mesh", src.label)
    # Counts come from the header: bound the cost (every face has at least 3 corners) before the body.
    parse_bytes = len(src.data) * (TEXT_PARSE_BYTES_PER_BYTE if fmt == "ascii" else 1)
    check_cost(limits, src.label, n_vertices=vertex.count, n_corners=3 * face.count, parse_bytes=parse_bytes)
    face_list = next((p for p in face.properties if p.name in _FACE_LISTS and p.count_dtype), None)
    if face_list is None:
        raise MeshLoadError("the face element has no vertex_indices list", src.label)

    reader = _AsciiBody(src, body_start) if fmt == "ascii" else _BinaryBody(src, body_start, fmt)
    columns: dict[str, dict[str, np.ndarray]] = {}
    for element in elements:
        columns[element.name] = reader.read(element)
        if "vertex" in columns and "face" in columns:
            break  # later elements (edges, materials) are not needed

    vertex_columns, face_columns = columns["vertex"], columns["face"]
    vertices = np.stack([vertex_columns[axis].astype(np.float64) for axis in "xyz"], axis=1)
    counts, corners = face_columns[face_list.name]
    if corners.dtype.kind == "f" and not np.array_equal(corners, np.round(corners)):
        raise MeshLoadError(f"face list {face_list.name!r} holds non-integer values", src.label)
    corners = corners.astype(np.int64)
    uvs = uv_indices = None
    uv_pair = next((pair for pair in _UV_NAMES if set(pair) <= names), None)
    if uv_pair is not None:
        uvs = np.stack([vertex_columns[n].astype(np.float64) for n in uv_pair], axis=1)
        uv_indices = corners
    return assemble_mesh(src, vertices, counts, corners, uvs=uvs, uv_indices=uv_indices)


# ---------------------------------------------------------------------------------------------- header
def _parse_header(src: Source) -> tuple[str, list[_Element], int]:
    data = src.data
    if not data.startswith(b"ply\n") and not data.startswith(b"ply\r\n"):
        raise MeshLoadError("not a PLY file (it does not start with 'ply')", src.label)
    end = data.find(b"end_header", 0, _MAX_HEADER)
    if end < 0:
        raise MeshLoadError("no 'end_header' line: truncated or not a PLY file", src.label)
    newline = data.find(b"\n", end)
    body_start = len(data) if newline < 0 else newline + 1
    try:
        lines = data[:end].decode("ascii").splitlines()[1:]
    except UnicodeDecodeError:
        raise MeshLoadError("the PLY header is not ASCII text", src.label) from None

    fmt = None
    elements: list[_Element] = []
    for number, line in enumerate(lines, start=2):
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        try:
            if words[0] == "format":
                fmt = words[1]
                if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
                    raise MeshLoadError(f"header line {number}: unknown format {fmt!r}", src.label)
            elif words[0] == "element":
                count = int(words[2])
                if count < 0:
                    raise ValueError(count)
                elements.append(_Element(words[1], count, ()))
            elif words[0] == "property":
                if not elements:
                    raise MeshLoadError(f"header line {number}: property before any element", src.label)
                if words[1] == "list":
                    prop = _Property(words[4], _TYPES[words[3]], _TYPES[words[2]])
                else:
                    prop = _Property(words[2], _TYPES[words[1]])
                last = elements[-1]
                elements[-1] = _Element(last.name, last.count, last.properties + (prop,))
            else:
                raise MeshLoadError(f"header line {number}: unknown keyword {words[0]!r}", src.label)
        except (IndexError, KeyError, ValueError):
            raise MeshLoadError(f"header line {number}: malformed {line.strip()!r}", src.label) from None
    if fmt is None:
        raise MeshLoadError("the header has no 'format' line", src.label)
    return fmt, elements, body_start


# ---------------------------------------------------------------------------------------------- bodies
class _BinaryBody:
    """Reads elements in order from a binary body; scalar-only elements are one structured frombuffer."""

    def __init__(self, src: Source, offset: int, fmt: str) -> None:
        self.src, self.offset = src, offset
        self.order = "<" if fmt == "binary_little_endian" else ">"

    def _take(self, dtype: np.dtype, count: int, what: str) -> np.ndarray:
        need = dtype.itemsize * count
        have = len(self.src.data) - self.offset
        if need > have:
            raise MeshLoadError(f"truncated: {what} needs {need:,} more bytes, the file has {have:,}", self.src.label)
        array = np.frombuffer(self.src.data, dtype, count, self.offset)
        self.offset += need
        return array

    def read(self, element: _Element) -> dict[str, object]:
        # Every row holds at least its scalars and its list lengths: a count the body cannot hold is a
        # truncated (or lying) file, found before walking millions of rows.
        row_bytes = sum(np.dtype(p.count_dtype or p.dtype).itemsize for p in element.properties)
        have = len(self.src.data) - self.offset
        if row_bytes * element.count > have:
            raise MeshLoadError(
                f"truncated: element {element.name!r} declares {element.count:,} rows of at least {row_bytes} "
                f"bytes, the file has {have:,} bytes left",
                self.src.label,
            )
        if all(p.count_dtype is None for p in element.properties):
            dtype = np.dtype([(f"p{i}", self.order + p.dtype) for i, p in enumerate(element.properties)])
            table = self._take(dtype, element.count, f"element {element.name!r}")
            return {p.name: table[f"p{i}"] for i, p in enumerate(element.properties)}
        if len(element.properties) == 1:
            prop = element.properties[0]
            lists = self._uniform_list(element, prop)
            if lists is None and np.dtype(prop.count_dtype).kind in "iu":
                lists = self._varying_list(element, prop)
            return {prop.name: lists}
        return self._list_rows(element)

    def _varying_list(self, element: _Element, prop: _Property) -> tuple[np.ndarray, np.ndarray]:
        """An element that is one list of varying length (mixed triangles and quads): one pass over the
        length prefixes in Python (each row's start depends on the previous length), then one gather."""
        what = f"element {element.name!r}"
        count_type = np.dtype(self.order + prop.count_dtype)
        item = np.dtype(self.order + prop.dtype)
        read_count = struct.Struct(self.order + count_type.char).unpack_from
        data, offset, end = self.src.data, self.offset, len(self.src.data)
        step, size = count_type.itemsize, item.itemsize
        counts, starts = array("q"), array("q")
        for row in range(element.count):
            if offset + step > end:
                raise MeshLoadError(f"truncated: {what} ends at row {row:,} of {element.count:,}", self.src.label)
            n = read_count(data, offset)[0]
            if n < 0:
                raise MeshLoadError(f"{what} row {row}: negative list length {n}", self.src.label)
            counts.append(n)
            starts.append(offset + step)
            offset += step + n * size
        if offset > end:
            raise MeshLoadError(f"truncated: {what} runs {offset - end:,} bytes past the end", self.src.label)
        self.offset = offset
        lengths = np.frombuffer(counts, np.int64)
        first = np.repeat(np.frombuffer(starts, np.int64), lengths)
        within = np.arange(len(first)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        byte_index = (first + within * size)[:, None] + np.arange(size)
        values = np.frombuffer(data, np.uint8)[byte_index].reshape(-1).view(item)
        return lengths.copy(), values

    def _uniform_list(self, element: _Element, prop: _Property) -> tuple[np.ndarray, np.ndarray] | None:
        """Fast path for an element that is one list of constant length (all triangles, all quads)."""
        count_type = np.dtype(self.order + prop.count_dtype)
        if len(self.src.data) - self.offset < count_type.itemsize:
            return None
        first = int(np.frombuffer(self.src.data, count_type, 1, self.offset)[0])
        if first < 0 or first * np.dtype(prop.dtype).itemsize > len(self.src.data) - self.offset:
            return None  # the row-by-row path reports it
        dtype = np.dtype([("n", count_type), ("items", self.order + prop.dtype, (first,))])
        if len(self.src.data) - self.offset < dtype.itemsize * element.count:
            return None
        table = np.frombuffer(self.src.data, dtype, element.count, self.offset)
        if (table["n"] != first).any():
            return None
        self.offset += dtype.itemsize * element.count
        return np.full(element.count, first, np.int64), table["items"].reshape(-1)

    def _list_rows(self, element: _Element) -> dict[str, object]:
        """General case: walk the rows (list lengths vary), one small frombuffer per property."""
        counts: dict[str, list[int]] = {p.name: [] for p in element.properties}
        chunks: dict[str, list[np.ndarray]] = {p.name: [] for p in element.properties}
        what = f"element {element.name!r}"
        for _ in range(element.count):
            for prop in element.properties:
                value_type = np.dtype(self.order + prop.dtype)
                if prop.count_dtype is None:
                    chunks[prop.name].append(self._take(value_type, 1, what))
                    continue
                n = int(self._take(np.dtype(self.order + prop.count_dtype), 1, what)[0])
                if n < 0:
                    row = len(counts[prop.name])
                    raise MeshLoadError(f"{what} row {row}: negative list length {n}", self.src.label)
                counts[prop.name].append(n)
                chunks[prop.name].append(self._take(value_type, n, what))
        return _columns(element, counts, chunks)


class _AsciiBody:
    """Reads elements in order from an ascii body: one element per line, whitespace-separated numbers."""

    def __init__(self, src: Source, offset: int) -> None:
        self.src = src
        try:
            self.lines = src.data[offset:].decode("ascii").splitlines()
        except UnicodeDecodeError:
            raise MeshLoadError("an ascii PLY body contains non-ASCII bytes", src.label) from None
        self.first_line = src.data[:offset].count(b"\n") + 1  # file line number of body row 0
        self.row = 0

    def read(self, element: _Element) -> dict[str, object]:
        rows = self.lines[self.row : self.row + element.count]
        if len(rows) < element.count:
            raise MeshLoadError(
                f"truncated: element {element.name!r} has {element.count:,} rows, the file has {len(rows):,}",
                self.src.label,
            )
        first_line = self.first_line + self.row
        self.row += element.count
        table = self._uniform_table(rows)
        if table is not None:
            if all(p.count_dtype is None for p in element.properties) and table.shape[1] == len(element.properties):
                return {p.name: table[:, i] for i, p in enumerate(element.properties)}
            # One list of constant length per row (all triangles, all quads): "n i0 ... i(n-1)".
            prop = element.properties[0]
            n = int(table[0, 0]) if table.shape[1] and np.isfinite(table[0, 0]) else -1
            one_list = len(element.properties) == 1 and prop.count_dtype is not None
            if one_list and table.shape[1] == n + 1 and (table[:, 0] == n).all():
                return {prop.name: (np.full(element.count, n, np.int64), table[:, 1:].reshape(-1))}
        return self._rows_one_by_one(element, rows, first_line)

    @staticmethod
    def _uniform_table(rows: list[str]) -> np.ndarray | None:
        """(R, K) float64 when every row has the same number of numeric values, else None."""
        try:
            table = np.array([row.split() for row in rows], dtype=np.float64)
        except ValueError:  # ragged rows or a non-number: the row-by-row path reports which
            return None
        return table if table.ndim == 2 else None

    def _rows_one_by_one(self, element: _Element, rows: list[str], first_line: int) -> dict[str, object]:
        counts: dict[str, list[int]] = {p.name: [] for p in element.properties}
        chunks: dict[str, list[np.ndarray]] = {p.name: [] for p in element.properties}
        for k, row_text in enumerate(rows):
            values = row_text.split()
            at = 0
            try:
                for prop in element.properties:
                    if prop.count_dtype is None:
                        chunks[prop.name].append(np.array([float(values[at])]))
                        at += 1
                        continue
                    n = int(values[at])
                    if n < 0 or at + 1 + n > len(values):
                        raise ValueError("a list runs past the end of its row")
                    counts[prop.name].append(n)
                    chunks[prop.name].append(np.array(values[at + 1 : at + 1 + n], dtype=np.float64))
                    at += 1 + n
                if at != len(values):
                    raise ValueError("extra values on the row")
            except (ValueError, IndexError) as exc:
                reason = "too few values" if isinstance(exc, IndexError) else str(exc)
                raise MeshLoadError(
                    f"line {first_line + k}: malformed {element.name!r} row {row_text.strip()!r} ({reason})",
                    self.src.label,
                ) from None
        return _columns(element, counts, chunks)


def _columns(element: _Element, counts: dict[str, list[int]], chunks: dict[str, list[np.ndarray]]) -> dict[str, object]:
    """Scalar properties as (R,) arrays; list properties as ((R,) lengths, (sum,) flat items)."""
    out: dict[str, object] = {}
    for prop in element.properties:
        flat = np.concatenate(chunks[prop.name]) if chunks[prop.name] else np.zeros(0)
        if prop.count_dtype is None:
            out[prop.name] = flat
        else:
            out[prop.name] = (np.asarray(counts[prop.name], np.int64), flat)
    return out


LOADERS = {"ply": load_ply}
