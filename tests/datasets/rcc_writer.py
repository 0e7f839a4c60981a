"""A small writer of Qt resource bundles (format version 3), for tests of the reader and the GCompris
corpus."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def write_rcc(path: Path, files: dict[str, bytes], compress: bool = False) -> Path:
    """Write ``files`` (``{"/dir/name": bytes}``) as a ``.rcc`` bundle at ``path``."""
    tree: dict = {}
    for name, blob in files.items():
        node = tree
        *dirs, leaf = name.strip("/").split("/")
        for d in dirs:
            node = node.setdefault(d, {})
        node[leaf] = blob
    names, data = bytearray(), bytearray()
    name_at: dict[str, int] = {}

    def name_offset(n: str) -> int:
        if n not in name_at:
            name_at[n] = len(names)
            names.extend(struct.pack(">HI", len(n), 0) + n.encode("utf-16-be"))
        return name_at[n]

    entries: list[bytes] = [b""]  # index 0: the root, written last
    queue = [("", tree, 0)]
    while queue:
        nm, node, index = queue.pop(0)
        first = len(entries)
        children = sorted(node.items())
        entries.extend(b"" for _ in children)
        for j, (child, value) in enumerate(children):
            if isinstance(value, dict):
                queue.append((child, value, first + j))
            else:
                payload = value
                flags = 0
                if compress:
                    payload, flags = struct.pack(">I", len(value)) + zlib.compress(value), 1
                offset = len(data)
                data.extend(struct.pack(">I", len(payload)) + payload)
                entries[first + j] = struct.pack(">IHHHIQ", name_offset(child), flags, 0, 0, offset, 0)
        entries[index] = struct.pack(">IHIIQ", name_offset(nm) if index else 0, 2, len(children), first, 0)
    tree_blob = b"".join(entries)
    header = 24
    tree_at, data_at = header, header + len(tree_blob)
    names_at = data_at + len(data)
    path.write_bytes(
        b"qres"
        + struct.pack(">IIIII", 3, tree_at, data_at, names_at, 0)
        + tree_blob
        + bytes(data)
        + bytes(names)
    )
    return path
