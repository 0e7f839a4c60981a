"""Test helpers shared by the encoder backend tests."""

import struct
import zlib

import numpy as np
from PIL import Image


def rand_image(size, seed, mode="RGB"):
    """A seeded random image of ``size`` (w, h) in mode RGB, RGBA or L."""
    rng = np.random.RandomState(seed)
    w, h = size
    channels = {"RGB": 3, "RGBA": 4}.get(mode)
    shape = (h, w) if channels is None else (h, w, channels)
    return Image.fromarray(rng.randint(0, 256, shape, dtype=np.uint8), mode if channels else "L")


def png_header(path, width: int, height: int):
    """A PNG whose header says ``width`` x ``height`` (8-bit grey) and whose pixels are missing: opening
    it reads the size; decoding it would fail (or, for a real file of that size, cost the memory)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path

