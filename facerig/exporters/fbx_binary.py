"""Binary FBX 7.4 encoding: a tree of :class:`Record` nodes in, file bytes out.

This module knows the container only (header, node records, typed properties, footer); which records an
FBX scene needs is :mod:`facerig.exporters.fbx`'s business.

Layout of a 7.4 file (little endian; 7.5 and later widen the three record header fields to 64 bits):

* header: ``b"Kaydara FBX Binary  \\x00\\x1a\\x00"`` then uint32 version (7400);
* records: uint32 end offset (absolute, from the start of the file), uint32 property count, uint32 byte
  length of the properties, uint8 name length, name, properties, nested records; a record with nested
  records (or with no properties) ends its nested list with a 13-byte null record;
* the top-level list ends with a null record, then the footer.

Property type codes: ``C`` bool, ``Y`` int16, ``I`` int32, ``L`` int64, ``F`` float32, ``D`` float64,
``S`` string, ``R`` raw bytes (both uint32 length + bytes), and arrays ``b`` bool, ``i`` int32, ``l`` int64,
``f`` float32, ``d`` float64 (uint32 count, uint32 encoding, uint32 stored byte length, data; encoding 1 is
zlib at level 1, used for arrays over 128 bytes as Autodesk's converter does).

A property's type is its Python/numpy type, so a record spells exactly what lands in the file:
``bool`` → C, ``np.int16`` → Y, ``np.int32`` → I, ``np.int64`` → L, ``np.float32`` → F, ``float`` or
``np.float64`` → D, ``str`` → S (UTF-8), ``bytes`` → R, and numpy arrays by dtype. A plain ``int`` is
rejected: FBX readers care whether a field is I or L, and the writer must say which.
"""

from __future__ import annotations

import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from facerig.errors import ExportError

FBX_VERSION = 7400
HEADER_MAGIC = b"Kaydara FBX Binary  \x00\x1a\x00"
NULL_RECORD = b"\x00" * 13  # a record header of zeros: end of a nested list (7.4 size)

# Autodesk's files carry a FileId and a footer derived from the creation time. Readers do not check them,
# but every reproducible writer (Blender's included) writes this fixed time with its matching constants,
# which also keeps our bytes identical between runs.
CREATION_TIME = "1970-01-01 10:00:00:000"
FILE_ID = bytes.fromhex("28b32aebb624ccc2bfc8b02aa92bfcf1")
FOOTER_ID = bytes.fromhex("fabcab09d0c8d466b176fb831cf7267e")
FOOTER_MAGIC = bytes.fromhex("f85a8c6adef5d97eece90ce3758f290b")

# Arrays larger than this many bytes are stored zlib-compressed (encoding 1).
COMPRESS_MIN_BYTES = 128
# Level 1, as Autodesk's FBX converter and Blender's exporter use: on the 95-shape ICT benchmark rig it
# compresses 4-8x faster than level 6 for a file 11 % larger (11.3 MB instead of 10.2 MB).
ZLIB_LEVEL = 1
# Compression threads at most; more do not help at the sizes a rig has.
MAX_THREADS = 8
# Records that the FBX SDK expects to close with a null record even when they hold only properties.
ALWAYS_NESTED = frozenset({"AnimationStack", "AnimationLayer"})
MAX_OFFSET = 2**32 - 1

Property = Union[bool, float, str, bytes, np.generic, np.ndarray]

_SCALAR_CODES: dict[type, tuple[bytes, str]] = {
    np.bool_: (b"C", "<?"),
    np.int16: (b"Y", "<h"),
    np.int32: (b"I", "<i"),
    np.int64: (b"L", "<q"),
    np.float32: (b"F", "<f"),
    np.float64: (b"D", "<d"),
}
_ARRAY_CODES: dict[np.dtype, bytes] = {
    np.dtype(np.bool_): b"b",
    np.dtype(np.int32): b"i",
    np.dtype(np.int64): b"l",
    np.dtype(np.float32): b"f",
    np.dtype(np.float64): b"d",
}


@dataclass
class Record:
    """One FBX node: a name, typed properties and nested records.

    Attributes:
        name: the node name (ASCII, < 256 bytes), e.g. "Vertices", "P", "Model".
        props: the properties in file order; their types pick the FBX type codes (module docstring).
        children: nested records in file order.
    """

    name: str
    props: list[Property] = field(default_factory=list)
    children: list["Record"] = field(default_factory=list)

    def add(self, name: str, *props: Property) -> "Record":
        """Append a child record ``name`` with ``props`` and return it (to nest further)."""
        child = Record(name, list(props))
        self.children.append(child)
        return child


# ---------------------------------------------------------------------------------------------- encoding
def encode_property(value: Property) -> bytes:
    """One property: its type code followed by its payload."""
    if isinstance(value, np.ndarray):
        return _encode_array(value)
    if isinstance(value, bool):
        return b"C" + struct.pack("<?", value)
    if isinstance(value, float):
        return b"D" + struct.pack("<d", value)
    if isinstance(value, str):
        data = value.encode("utf-8")
        return b"S" + struct.pack("<I", len(data)) + data
    if isinstance(value, bytes):
        return b"R" + struct.pack("<I", len(value)) + value
    if isinstance(value, np.generic) and type(value) in _SCALAR_CODES:
        code, fmt = _SCALAR_CODES[type(value)]
        return code + struct.pack(fmt, value)
    raise TypeError(f"no FBX property type for {type(value).__name__} {value!r}; use an explicit numpy type")


def _encode_array(array: np.ndarray) -> bytes:
    code = _ARRAY_CODES.get(array.dtype)
    if code is None:
        raise TypeError(f"no FBX array type for dtype {array.dtype}")
    data = np.ascontiguousarray(array.reshape(-1), dtype=array.dtype.newbyteorder("<")).tobytes()
    encoding = 0
    if len(data) > COMPRESS_MIN_BYTES:
        data, encoding = zlib.compress(data, ZLIB_LEVEL), 1
    return code + struct.pack("<3I", array.size, encoding, len(data)) + data


def _encode_arrays(records: list[Record]) -> dict[int, bytes]:
    """Every array property of the tree, encoded, keyed by ``id(array)``.

    Compression is nearly all of an export's time (55 MB of arrays for a 95-shape, 27k-vertex head) and
    ``zlib.compress`` releases the GIL, so the arrays are encoded on a thread pool. Each array is
    compressed on its own, so the bytes do not depend on the number of threads.
    """
    arrays: dict[int, np.ndarray] = {}
    stack = list(records)
    while stack:
        record = stack.pop()
        arrays.update((id(p), p) for p in record.props if isinstance(p, np.ndarray))
        stack.extend(record.children)
    workers = min(len(arrays), os.cpu_count() or 1, MAX_THREADS)
    if workers <= 1:
        return {key: _encode_array(array) for key, array in arrays.items()}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(arrays, pool.map(_encode_array, arrays.values())))


def _encode_record(record: Record, start: int, out: list[bytes], arrays: dict[int, bytes]) -> int:
    """Append the bytes of ``record`` (and its subtree), which begins at absolute offset ``start``, to ``out``.

    Returns the offset where the record ends. Pieces are appended, not joined per level, so each byte of a
    large array is copied once, by the final join.

    Args:
        arrays: encoded array properties from :func:`_encode_arrays`, keyed by ``id(array)``.
    """
    name = record.name.encode("ascii")
    if len(name) > 255:
        raise ValueError(f"FBX record name too long: {record.name[:40]}...")
    props = [arrays[id(p)] if isinstance(p, np.ndarray) else encode_property(p) for p in record.props]
    props_len = sum(len(p) for p in props)
    head_index = len(out)
    out.append(b"")  # the header, once the end offset is known
    out.extend(props)
    offset = start + 13 + len(name) + props_len
    for child in record.children:
        offset = _encode_record(child, offset, out, arrays)
    if record.children or not record.props or record.name in ALWAYS_NESTED:
        out.append(NULL_RECORD)
        offset += len(NULL_RECORD)
    if offset > MAX_OFFSET:
        raise ExportError("the FBX file would exceed 4 GiB, the limit of FBX 7.4's 32-bit offsets")
    out[head_index] = struct.pack("<3IB", offset, len(record.props), props_len, len(name)) + name
    return offset


def _footer(offset: int, version: int) -> bytes:
    """The footer that follows the top-level null record, which ends at ``offset``."""
    tail = FOOTER_ID + b"\x00" * 4
    end = offset + len(tail)
    # Pad to a 16-byte boundary; a file already aligned still gets a full 16 bytes (Autodesk's behaviour).
    pad = (-end) % 16 or 16
    return tail + b"\x00" * pad + struct.pack("<I", version) + b"\x00" * 120 + FOOTER_MAGIC


def encode_document(records: list[Record], version: int = FBX_VERSION) -> bytes:
    """A whole binary FBX file holding ``records`` at top level.

    Deterministic: the same records give the same bytes (fixed time constants, stable zlib output).
    Callers should include top-level ``FileId`` = :data:`FILE_ID` and ``CreationTime`` =
    :data:`CREATION_TIME` records so the file matches its footer.
    """
    if version != FBX_VERSION:
        raise ValueError(f"this encoder writes FBX {FBX_VERSION} (32-bit record offsets), not {version}")
    arrays = _encode_arrays(records)
    chunks = [HEADER_MAGIC, struct.pack("<I", version)]
    offset = len(HEADER_MAGIC) + 4
    for record in records:
        offset = _encode_record(record, offset, chunks, arrays)
    chunks.append(NULL_RECORD)
    offset += len(NULL_RECORD)
    chunks.append(_footer(offset, version))
    return b"".join(chunks)
