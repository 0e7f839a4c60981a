"""Read Qt resource bundles (``.rcc``), the files GCompris ships its activities' photos and texts in.

An ``.rcc`` file is a tree of named entries over a data block (Qt's ``rcc`` tool writes it; format
versions 1-3): a header ``qres``, the version and the offsets of the tree, the data and the names; each
tree entry names a directory (children) or a file (an offset into the data, zlib-compressed when its
flag says so). :func:`read_rcc` returns the files as ``{path: bytes}``. Every offset is checked against
the file's size and what decompression yields is bounded (per entry and in all), so a truncated or
corrupt bundle is an :class:`~ragsc.errors.InputError` naming it, never an out-of-range read or a huge
allocation.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from ragsc.errors import InputError

MAX_RCC_BYTES = 64 * 1024 * 1024  # the largest GCompris bundle is ~5 MB
MAX_FILE_BYTES = 64 * 1024 * 1024  # one decompressed file
MAX_TOTAL_BYTES = 256 * 1024 * 1024  # everything one bundle yields
_COMPRESSED, _DIRECTORY, _ZSTD = 0x01, 0x02, 0x04


def read_rcc(path: str | Path, suffixes: tuple[str, ...] | None = None) -> dict[str, bytes]:
    """The files of the Qt resource bundle at ``path``: ``{"/dir/name.ext": bytes}``.

    Parameters
    ----------
    path
        An ``.rcc`` file.
    suffixes
        Keep only files whose name ends with one of these (``None``: all).

    Raises
    ------
    InputError
        Not a Qt resource bundle, an unsupported version or compression (zstd), or corrupt.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no Qt resource bundle at {path}")
    if path.stat().st_size > MAX_RCC_BYTES:
        raise InputError(f"{path} is larger than {MAX_RCC_BYTES >> 20} MiB; not a resource bundle read here")
    blob = path.read_bytes()
    try:
        return _Bundle(blob).files(suffixes)
    except (struct.error, zlib.error, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a valid Qt resource bundle: {exc}") from None
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


class _Bundle:
    def __init__(self, blob: bytes) -> None:
        if blob[:4] != b"qres" or len(blob) < 20:
            raise InputError("not a Qt resource bundle (no 'qres' header)")
        self.blob = blob
        self.version, self.tree, self.data, self.names = struct.unpack(">IIII", blob[4:20])
        if self.version not in (1, 2, 3):
            raise InputError(f"unsupported Qt resource format version {self.version}")
        if max(self.tree, self.data, self.names) >= len(blob):
            raise InputError("an offset points past the end of the file")
        self.entry = 14 if self.version == 1 else 22  # version >= 2 adds a last-modified stamp

    def _take(self, offset: int, n: int) -> bytes:
        if offset < 0 or offset + n > len(self.blob):
            raise InputError("an entry points past the end of the file")
        return self.blob[offset : offset + n]

    def _name(self, offset: int) -> str:
        (n,) = struct.unpack(">H", self._take(self.names + offset, 2))
        return self._take(self.names + offset + 6, 2 * n).decode("utf-16-be")  # skip length + hash

    def _data(self, offset: int, flags: int) -> bytes:
        (size,) = struct.unpack(">I", self._take(self.data + offset, 4))
        raw = self._take(self.data + offset + 4, size)
        if flags & _ZSTD:
            raise InputError("zstd-compressed entries are not supported")
        if flags & _COMPRESSED:
            (full,) = struct.unpack(">I", raw[:4])
            if full > MAX_FILE_BYTES:
                raise InputError(f"an entry claims {full} bytes uncompressed")
            d = zlib.decompressobj()
            # max_length 0 would mean "no limit": an entry that claims nothing may yield one byte at most
            raw = d.decompress(raw[4:], max(full, 1))
            if d.unconsumed_tail or not d.eof or len(raw) != full:
                raise InputError("an entry's data do not match its stated size")
        return raw

    def files(self, suffixes: tuple[str, ...] | None) -> dict[str, bytes]:
        most = len(self.blob) // self.entry  # no tree holds more entries than the file has room for
        out: dict[str, bytes] = {}
        total = 0
        stack, seen = [(0, "")], set()
        while stack:
            index, prefix = stack.pop()
            if index in seen or index >= most:
                raise InputError("the entry tree has a cycle or an out-of-range child")
            seen.add(index)
            at = self.tree + index * self.entry
            name_offset, flags = struct.unpack(">IH", self._take(at, 6))
            name = self._name(name_offset) if index else ""
            if flags & _DIRECTORY:
                count, first = struct.unpack(">II", self._take(at + 6, 8))
                if first + count > most:
                    raise InputError("a directory claims more entries than the file holds")
                stack.extend((first + c, f"{prefix}{name}/") for c in range(count))
            elif suffixes is None or name.lower().endswith(suffixes):
                (offset,) = struct.unpack(">I", self._take(at + 10, 4))
                out[prefix + name] = data = self._data(offset, flags)
                total += len(data)  # entries may share their data: count what is handed out
                if total > MAX_TOTAL_BYTES:
                    raise InputError(f"the bundle yields more than {MAX_TOTAL_BYTES >> 20} MiB")
        return out
