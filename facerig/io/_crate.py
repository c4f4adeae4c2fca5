"""Declared sizes in binary USD (crate, ``.usdc``) layers, checked from their headers before USD allocates.

USD reads a crate array by allocating as many elements as the file declares, then filling them (decompressing
or copying), and usd-core gives no way to learn an array's length without that allocation: ``Attribute.Get``
and the ``Sdf`` specs materialise the value, and nothing else exposes its size. So a few kilobytes that declare
60 million face counts cost 240 MB before any length check could run, and a declared billion costs what the
machine has. :func:`check_usd_file` therefore reads a layer the way USD's ``crateFile.cpp`` lays it out: the
bootstrap, the table of contents, the first counts of every structural section, and every value
representation of the FIELDS section (LZ4-decompressed here). For each value that holds an array (attribute
defaults, time samples, entries of dictionaries, VtValues and references' custom data) it reads the element
count at the array's offset, and for list ops and vectors their item counts; no value itself is read. A layer
is refused, before USD opens it, when

- a count is more than the file's bytes can hold: an uncompressed array or vector longer than the bytes after
  it, a compressed one longer than its compressed bytes expand to (USD's integer coding takes at least 2 bits
  an int, LZ4 expands a byte at most 255 times: under 1,024 ints per byte), a structural table larger than its
  section; the file is corrupt or crafted;
- an array is longer or larger than any array of a mesh within :class:`LoadLimits`
  (:func:`~facerig.io._common.max_array`): facerig would refuse the mesh anyway, after USD had allocated it;
- the structural tables USD builds on opening the layer would not fit the memory budget.

Packages (``.usdz``) are checked member by member (USD requires them stored, so a member is a byte range of
the package). Crate versions before 0.4.0 (2017; their tables are laid out otherwise) and packages inside
packages are refused rather than read unchecked. Not walked: animation splines (crate 0.12), whose knots no
mesh reader asks for. Text layers (``.usda``) need no such check: their arrays are no longer than their text,
which the sandbox's ``max_file_bytes`` bounds.
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import numpy as np

from facerig.errors import MeshLoadError
from facerig.io._common import LoadLimits, max_array

CRATE_MAGIC = b"PXR-USDC"
_ZIP_MAGIC = b"PK\x03\x04"
_BOOTSTRAP = struct.Struct("<8s3B5xq")  # ident, major, minor, patch, tocOffset (64 reserved bytes follow)
_SECTION = struct.Struct("<16sqq")  # name, start, size
_MAX_SECTIONS = 64  # USD writes six
_MIN_COMPRESSED_ARRAY = 16  # shorter (u)int and float arrays are stored plain even when marked compressed
_LZ4_MAX_INPUT = 0x7E000000

# ValueRep: 1 bit array, 1 bit inlined, 1 bit compressed, 5 unused, 8 bits type, 48 bits payload (file offset).
_ARRAY_BIT, _INLINED_BIT, _COMPRESSED_BIT = 1 << 63, 1 << 62, 1 << 61
_PAYLOAD_MASK = (1 << 48) - 1
# Type enum -> (name, bytes per element in the file, bytes per element in memory), for array-capable types.
_ARRAY_TYPES = {
    1: ("bool", 1, 1), 2: ("uchar", 1, 1), 3: ("int", 4, 4), 4: ("uint", 4, 4), 5: ("int64", 8, 8),
    6: ("uint64", 8, 8), 7: ("half", 2, 2), 8: ("float", 4, 4), 9: ("double", 8, 8), 10: ("string", 4, 32),
    11: ("token", 4, 8), 12: ("asset", 4, 64), 13: ("matrix2d", 32, 32), 14: ("matrix3d", 72, 72),
    15: ("matrix4d", 128, 128), 16: ("quatd", 32, 32), 17: ("quatf", 16, 16), 18: ("quath", 8, 8),
    19: ("double2", 16, 16), 20: ("float2", 8, 8), 21: ("half2", 4, 4), 22: ("int2", 8, 8), 23: ("double3", 24, 24),
    24: ("float3", 12, 12), 25: ("half3", 6, 6), 26: ("int3", 12, 12), 27: ("double4", 32, 32),
    28: ("float4", 16, 16), 29: ("half4", 8, 8), 30: ("int4", 16, 16), 56: ("timecode", 8, 8),
    57: ("pathExpression", 4, 64),
}  # fmt: skip
_INT_TYPES = {3: 4, 4: 4, 5: 8, 6: 8}  # compressed with USD's integer coding (since 0.5.0): bytes per int
_FLOAT_TYPES = {7, 8, 9}  # compressed as ints or a lookup table (since 0.6.0)
_DICTIONARY, _TIME_SAMPLES, _VALUE, _UNREGISTERED_VALUE = 31, 46, 52, 53
# Vectors (uint64 count, then items) and list ops (a header byte, then up to six such vectors): item bytes.
_VECTORS = {40: 4, 41: 4, 48: 8, 49: 16, 50: 4, 45: 8, 58: 8}  # paths, tokens, doubles, layer offsets, strings, ...
_LIST_OPS = {32: 4, 33: 4, 34: 4, 36: 4, 37: 8, 38: 4, 39: 8}  # token, string, path, (u)int(64) list ops
_REFERENCE_LIST_OP, _PAYLOAD_LIST_OP, _UNREGISTERED_LIST_OP = 35, 55, 54
# Fewest bytes an item takes: reference (paths, offset, empty custom data), payload, VtValue (a jump).
_VARIABLE_LIST_OPS = {_REFERENCE_LIST_OP: 32, _PAYLOAD_LIST_OP: 8, _UNREGISTERED_LIST_OP: 8}
_CONTAINERS = {_DICTIONARY, _TIME_SAMPLES, _VALUE, _UNREGISTERED_VALUE, *_VECTORS, *_LIST_OPS, *_VARIABLE_LIST_OPS}
_LIST_OP_ITEM_BITS = (1 << 1, 1 << 2, 1 << 5, 1 << 6, 1 << 3, 1 << 4)  # explicit, added, prepended, appended, ...
# What USD holds per entry of each structural table once the layer is open (the table, its decoding space).
_STRUCTURAL_BYTES = {"TOKENS": 64, "STRINGS": 8, "FIELDS": 32, "FIELDSETS": 8, "PATHS": 24, "SPECS": 16}


def check_usd_file(path: Path, limits: LoadLimits, label: str | Path) -> None:
    """Check every crate layer in ``path`` (a crate file, or a package's crate members) before USD opens it.

    ``label`` is the input; ``path`` may be a layer it composes. A text layer passes untouched. Refusals are one
    :class:`MeshLoadError` naming ``label`` and, when it is another file, the layer.
    """
    layer = "binary USD" if Path(label) == path else f"binary USD layer {path.name}"
    prefix = layer
    with open(path, "rb") as handle:  # the sandbox admitted it: a regular file, so open cannot block
        fd = handle.fileno()
        size = os.fstat(fd).st_size
        head = os.pread(fd, 8, 0)
        try:
            if head.startswith(CRATE_MAGIC):
                _Crate(fd, 0, size, limits).check()
            elif head.startswith(_ZIP_MAGIC):
                for name, start, length in _package_members(handle, size):
                    prefix = f"{layer} member {name!r}"
                    _Crate(fd, start, length, limits).check()
        except (_Corrupt, _Refused) as exc:
            raise _error(prefix, exc, label) from None


def _error(prefix: str, exc: Exception, label: str | Path) -> MeshLoadError:
    return MeshLoadError(f"{prefix} is corrupt: {exc}" if isinstance(exc, _Corrupt) else f"{prefix}{exc}", label)


def _package_members(handle, size: int) -> list[tuple[str, int, int]]:
    """(name, start, length) of each crate member of a usdz package (stored: a byte range of the package)."""
    try:
        members = zipfile.ZipFile(handle).infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        return []  # not a package USD can read either; USD says so
    fd, crates = handle.fileno(), []
    for member in members:
        if member.compress_type != zipfile.ZIP_STORED:
            continue  # USD refuses compressed members
        header = os.pread(fd, 30, member.header_offset)
        if len(header) < 30 or not header.startswith(_ZIP_MAGIC):
            continue
        name_length, extra_length = struct.unpack_from("<HH", header, 26)
        start = member.header_offset + 30 + name_length + extra_length
        head = os.pread(fd, 8, start)
        if head.startswith(CRATE_MAGIC):
            crates.append((member.filename, start, max(0, min(member.compress_size, size - start))))
        elif head.startswith(_ZIP_MAGIC) or member.filename.lower().endswith(".usdz"):
            raise _Refused(f": member {member.filename!r} is a package inside the package, which facerig does not "
                           "read (its layers could not be checked)")
    return crates


class _Refused(Exception):
    """Why a layer is refused: the rest of the message after the layer's name."""


class _Corrupt(Exception):
    """The crate's structure contradicts itself or its size."""


def crate_arrays(path: Path, limits: LoadLimits | None = None) -> list[tuple[str, int]]:
    """(element type, declared length) of every non-empty array in the crate file ``path``, once each, as
    :func:`check_usd_file` finds them (which it does, refusing the same files)."""
    with open(path, "rb") as handle:
        try:
            return _Crate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size, limits or LoadLimits()).check()
        except (_Corrupt, _Refused) as exc:
            raise _error("binary USD", exc, path) from None


class _Crate:
    """One crate layer: ``size`` bytes at ``base`` in the open file ``fd``."""

    def __init__(self, fd: int, base: int, size: int, limits: LoadLimits) -> None:
        self.fd, self.base, self.size, self.limits = fd, base, size, limits
        self.version = (0, 0, 0)
        self.arrays: list[tuple[str, int]] = []

    def check(self) -> list[tuple[str, int]]:
        """Raise _Corrupt or _Refused, or return the arrays found (type name, declared length)."""
        sections = self._sections()
        self._check_structure(sections)
        if "FIELDS" in sections:
            self._check_values(self._value_reps(*sections["FIELDS"]))
        return self.arrays

    # -------------------------------------------------------------------------------------- raw reads
    def _bounds(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise _Corrupt(f"{length:,} bytes at offset {offset:,} lie outside its {self.size:,} bytes")

    def _read(self, offset: int, length: int) -> bytes:
        self._bounds(offset, length)
        return os.pread(self.fd, length, self.base + offset)

    def _u64(self, offset: int) -> int:
        return struct.unpack("<Q", self._read(offset, 8))[0]

    def _i64(self, offset: int) -> int:
        return struct.unpack("<q", self._read(offset, 8))[0]

    def _count(self, offset: int) -> tuple[int, int]:
        """An array's element count at ``offset`` (uint32 before crate 0.7.0) and the offset after it."""
        if self.version < (0, 7, 0):
            return struct.unpack("<I", self._read(offset, 4))[0], offset + 4
        return self._u64(offset), offset + 8

    # -------------------------------------------------------------------------------------- structure
    def _sections(self) -> dict[str, tuple[int, int]]:
        ident, major, minor, patch, toc = _BOOTSTRAP.unpack(self._read(0, _BOOTSTRAP.size))
        self.version = (major, minor, patch)
        if self.version < (0, 4, 0):
            raise _Refused(f" is crate version {major}.{minor}.{patch}, older than facerig reads (0.4.0, 2017): "
                           "save it again with a current USD")
        if toc >= self.size:
            raise _Corrupt(f"possibly truncated: its table of contents is at offset {toc:,} of its {self.size:,} bytes")
        if toc < _BOOTSTRAP.size:
            raise _Corrupt(f"its table of contents is at offset {toc:,}, inside its header")
        count = self._u64(toc)
        if count > _MAX_SECTIONS:
            raise _Corrupt(f"its table of contents lists {count:,} sections")
        sections = {}
        for index in range(count):
            name, start, length = _SECTION.unpack(self._read(toc + 8 + index * _SECTION.size, _SECTION.size))
            self._bounds(start, length)
            sections[name.split(b"\0", 1)[0].decode("ascii", "replace")] = (start, length)
        return sections

    def _check_structure(self, sections: dict[str, tuple[int, int]]) -> None:
        """The tables' declared lengths against their sections' bytes, and together against the memory budget."""
        entries, need = [], 0
        for name, (start, length) in sections.items():
            if name not in _STRUCTURAL_BYTES or length < 8:
                continue
            count = self._u64(start)
            if name == "STRINGS":  # uncompressed string indices
                most = (length - 8) // 4
            elif name == "TOKENS":  # then the text's length and its LZ4-compressed bytes; each token ends in NUL
                text = self._u64(start + 8)
                if text > _most_bytes(length):
                    raise _Corrupt(f"its tokens claim {text:,} bytes of text in a {length:,}-byte section")
                most, need = text, need + text
            else:  # USD's integer coding
                most = _most_ints(length)
            if count > most:
                raise _Corrupt(f"its {name} section of {length:,} bytes claims {count:,} entries")
            entries.append(f"{count:,} {name.lower()}")
            need += count * _STRUCTURAL_BYTES[name]
        if need > self.limits.max_memory_bytes:
            raise _Refused(f": its tables ({', '.join(entries)}) would need about {need / 2**20:,.0f} MiB, over the "
                           f"memory budget of {self.limits.max_memory_bytes / 2**20:,.0f} MiB "
                           "(LoadLimits.max_memory_bytes)")

    def _value_reps(self, start: int, length: int) -> list[int]:
        """The FIELDS section's value representations: (uint64 count, compressed token indices, compressed reps)."""
        count = self._u64(start)
        if count == 0:
            return []
        indices = min(self._u64(start + 8), _int_buffer_bytes(count, 4))  # USD reads no more than its buffer
        position = start + 16 + indices
        reps_size = self._u64(position)
        if count * 8 > _most_bytes(reps_size):
            raise _Corrupt(f"{count:,} fields in {reps_size:,} bytes of value representations")
        data = _fast_decompress(self._read(position + 8, reps_size), count * 8)
        if len(data) != count * 8:
            raise _Corrupt(f"{count:,} fields but {len(data) // 8:,} value representations")
        reps = np.unique(np.frombuffer(data, "<u8"))
        # Only values stored out of line that hold an array or may hold one; most are inlined scalars.
        kinds = (reps >> np.uint64(48)) & np.uint64(0xFF)
        kept = ((reps & np.uint64(_INLINED_BIT)) == 0) & (
            ((reps & np.uint64(_ARRAY_BIT)) != 0) | np.isin(kinds, list(_CONTAINERS)))
        return reps[kept].tolist()

    # ----------------------------------------------------------------------------------------- values
    def _check_values(self, reps: list[int]) -> None:
        """Every array a value holds, directly or inside time samples, dictionaries and VtValues (iteratively:
        a crafted file may nest deeply, or loop; each representation is visited once)."""
        pending, seen = list(reps), set()
        while pending:
            rep = pending.pop()
            if rep in seen or rep & _INLINED_BIT:
                continue
            seen.add(rep)
            kind, offset = (rep >> 48) & 0xFF, rep & _PAYLOAD_MASK
            if rep & _ARRAY_BIT:
                self._check_array(kind, bool(rep & _COMPRESSED_BIT), offset)
            elif kind == _TIME_SAMPLES:
                pending.extend(self._time_samples(offset))
            elif kind == _DICTIONARY:
                pending.extend(self._dictionary(offset)[0])
            elif kind in (_VALUE, _UNREGISTERED_VALUE):
                pending.append(self._vt_value(offset)[1])
            elif kind in _VECTORS:
                self._items(offset, _VECTORS[kind], "vector")
            elif kind in _LIST_OPS or kind in _VARIABLE_LIST_OPS:
                pending.extend(self._list_op(kind, offset))

    def _check_array(self, kind: int, compressed: bool, offset: int) -> None:
        if offset == 0:  # an empty array
            return
        name, file_bytes, memory_bytes = _ARRAY_TYPES.get(kind, (f"type-{kind}", 1, 8))
        count, position = self._count(offset + (4 if self.version < (0, 5, 0) else 0))  # after a rank, before 0.5
        # USD reads the compressed bit of (u)int arrays since 0.5.0, of floating-point ones since 0.6.0.
        compressed = compressed and count >= _MIN_COMPRESSED_ARRAY and (
            (kind in _INT_TYPES and self.version >= (0, 5, 0)) or (kind in _FLOAT_TYPES and self.version >= (0, 6, 0)))
        if compressed:
            int_bytes = _INT_TYPES.get(kind, 4)
            if kind in _FLOAT_TYPES:  # a code: 'i' (the floats are ints) or 't' (a lookup table, then indices)
                code = self._read(position, 1)
                position += 1
                if code == b"t":
                    table = struct.unpack("<I", self._read(position, 4))[0]
                    position += 4 + table * file_bytes
                elif code != b"i":
                    raise _Corrupt(f"a compressed array of {name} values has the unknown code {code!r}")
            stored = min(self._u64(position), _int_buffer_bytes(count, int_bytes))
            self._bounds(position + 8, stored)
            if count > _most_ints(stored):
                raise _Corrupt(f"an array declares {count:,} {name} values in {stored:,} compressed bytes")
        elif count * file_bytes > self.size - position:
            raise _Corrupt(f"an array declares {count:,} {name} values in the {max(0, self.size - position):,} "
                           "bytes after it")
        self.arrays.append((name, count))
        most, largest = max_array(self.limits)
        if count > most or count * memory_bytes > largest:
            raise _Refused(
                f": an array of {count:,} {name} values ({count * memory_bytes / 2**20:,.0f} MiB) is over the memory "
                f"budget: no mesh within {self.limits.max_memory_bytes / 2**20:,.0f} MiB (LoadLimits.max_memory_bytes)"
                f" and {self.limits.max_vertices:,} vertices has an array over {most:,} elements or "
                f"{largest / 2**20:,.0f} MiB")

    def _time_samples(self, offset: int) -> list[int]:
        """The times' representation and every sample's: jump, times rep, jump, uint64 count, reps."""
        position = offset + self._i64(offset)
        times = self._u64(position)
        position += 8
        position += self._i64(position)
        count = self._u64(position)
        if count * 8 > self.size - position - 8:
            raise _Corrupt(f"time samples declare {count:,} values in the bytes after them")
        return [times, *struct.unpack(f"<{count}Q", self._read(position + 8, count * 8))]

    def _dictionary(self, offset: int) -> tuple[list[int], int]:
        """Each entry's value representation, and the offset past the dictionary: a uint64 count, then per
        entry a key (a string index) and a VtValue."""
        count, position = self._items(offset, 12, "dictionary")  # a key and a jump at the least
        reps = []
        for _ in range(count):
            position, rep = self._vt_value(position + 4)
            reps.append(rep)
        return reps, position

    def _vt_value(self, offset: int) -> tuple[int, int]:
        """A VtValue at ``offset`` (a jump to its representation, read on from there): (offset past it, rep)."""
        at = offset + self._i64(offset)
        return at + 8, self._u64(at)

    def _items(self, offset: int, item_bytes: int, what: str) -> tuple[int, int]:
        """A uint64 count of items of at least ``item_bytes`` bytes, checked against the bytes after it:
        (count, offset of the first item)."""
        count = self._u64(offset)
        if count * item_bytes > self.size - offset - 8:
            raise _Corrupt(f"a {what} declares {count:,} items in the bytes after it")
        return count, offset + 8

    def _list_op(self, kind: int, offset: int) -> list[int]:
        """The value representations inside a list op's items (references' custom data, unregistered values):
        a header byte, then a vector of items for each kind of item it has."""
        header = self._read(offset, 1)[0]
        position, reps = offset + 1, []
        for bit in _LIST_OP_ITEM_BITS:
            if not header & bit:
                continue
            count, position = self._items(position, {**_LIST_OPS, **_VARIABLE_LIST_OPS}[kind], "list op")
            if kind in _LIST_OPS:
                position += count * _LIST_OPS[kind]
                continue
            for _ in range(count):
                if kind == _REFERENCE_LIST_OP:  # asset path, prim path, layer offset, custom data
                    entries, position = self._dictionary(position + 24)
                    reps.extend(entries)
                elif kind == _PAYLOAD_LIST_OP:  # asset path, prim path, layer offset (since 0.8.0)
                    position += 24 if self.version >= (0, 8, 0) else 8
                else:  # unregistered values: VtValues
                    position, rep = self._vt_value(position)
                    reps.append(rep)
        return reps


# ---------------------------------------------------------------------------------------------- compression
def _most_bytes(compressed: int) -> int:
    """The most bytes ``compressed`` bytes of TfFastCompression (LZ4 blocks) can expand to."""
    return 255 * compressed + 255


def _most_ints(compressed: int) -> int:
    """The most ints USD's integer coding fits in ``compressed`` bytes: 2 bits each at best, after LZ4."""
    return 4 * _most_bytes(compressed)


def _int_buffer_bytes(count: int, int_bytes: int) -> int:
    """USD's buffer for ``count`` compressed ints (Usd_IntegerCompression::GetCompressedBufferSize): it reads no
    more compressed bytes than this, whatever the file says."""
    encoded = int_bytes + (count * 2 + 7) // 8 + count * int_bytes if count else 0
    if encoded <= _LZ4_MAX_INPUT:
        return encoded + encoded // 255 + 16 + 1
    whole, part = divmod(encoded, _LZ4_MAX_INPUT)
    chunk = _LZ4_MAX_INPUT + _LZ4_MAX_INPUT // 255 + 16 + 4
    return 1 + whole * chunk + (part + part // 255 + 16 + 4 if part else 0)


def _fast_decompress(data: bytes, limit: int) -> bytes:
    """TfFastCompression's format: a chunk count byte (0: one LZ4 block), then int32-sized LZ4 blocks."""
    if not data:
        raise _Corrupt("an empty compressed block")
    chunks = data[0]
    if chunks == 0:
        return _lz4_block(data[1:], limit)
    if chunks > 127:
        raise _Corrupt(f"a compressed block of {chunks} chunks")
    out, position = bytearray(), 1
    for _ in range(chunks):
        (length,) = struct.unpack_from("<i", data, position) if position + 4 <= len(data) else (-1,)
        if length < 0 or position + 4 + length > len(data):
            raise _Corrupt("a compressed chunk runs past its block")
        out += _lz4_block(data[position + 4:position + 4 + length], limit - len(out))
        position += 4 + length
    return bytes(out)


def _lz4_block(src: bytes, limit: int) -> bytes:
    """Decode one LZ4 block, refusing output past ``limit`` bytes."""
    out, position, end = bytearray(), 0, len(src)
    try:
        while position < end:
            token = src[position]
            position += 1
            length, position = _lz4_length(src, position, token >> 4)
            out += src[position:position + length]
            position += length
            if position >= end:  # the last sequence has literals only
                break
            distance = src[position] | src[position + 1] << 8
            position += 2
            length, position = _lz4_length(src, position, token & 15)
            length += 4
            if not 0 < distance <= len(out) or len(out) + length > limit:
                raise _Corrupt("an LZ4 block refers outside its output")
            start = len(out) - distance
            while length:  # the copy may overlap what it writes: it repeats with period ``distance``
                piece = out[start:start + min(length, len(out) - start)]
                out += piece
                length -= len(piece)
    except IndexError:
        raise _Corrupt("an LZ4 block ends mid-sequence") from None
    if len(out) > limit:
        raise _Corrupt("an LZ4 block expands past its declared size")
    return bytes(out)


def _lz4_length(src: bytes, position: int, length: int) -> tuple[int, int]:
    if length == 15:
        while True:
            extra = src[position]
            position += 1
            length += extra
            if extra != 255:
                break
    return length, position
