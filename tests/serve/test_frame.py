"""The binary frame: a round trip keeps every symbol, and each malformed frame is an InputError naming it."""

import json
import struct

import pytest
import torch

from ragsc.channel.path import Observed
from ragsc.config import ChannelConfig
from ragsc.errors import InputError
from ragsc.pipelines.items import Message
from ragsc.pipelines.transmission import Emission
from ragsc.serve import frame


def emission(channel="rayleigh") -> Emission:
    g = torch.Generator().manual_seed(0)
    c = lambda *s: torch.complex(torch.randn(*s, generator=g), torch.randn(*s, generator=g))  # noqa: E731
    msgs = [Message("text", "SECRET sentence", []), Message("image", None, ["what is it?"]),
            Message("text", "another SECRET", [])]
    em = Emission(msgs, ChannelConfig(channel=channel))
    fades = channel != "awgn"
    em.analog = Observed(c(1, 6), c(1, 1) if fades else None, 5.0, {"gain": [1.5], "n_features": [96]})
    em.analog_rows, em.modalities = [1], ["image"]
    em.sentences = Observed(c(3, 10), c(3, 1) if fades else None, 5.0, {"channel_uses": [10, 10, 9]})
    em.token_rows, em.frames_per_item, em.tokens_per_item = [0, 2], [2, 1], [30, 4]
    em.photos = [Observed(c(1, 24), c(1, 1) if fades else None, 5.0, {"size": [[16, 8]]})]
    em.photo_rows = [1]
    return em


def test_round_trip_keeps_symbols_csi_and_headers():
    em = emission()
    body = frame.encode(em, "multitask", "fp")
    assert body[:4] == b"RSCF" and struct.unpack_from("<H", body, 4)[0] == frame.VERSION
    header, back = frame.decode(body)
    assert (header.spec, header.encoder, header.snr_db) == ("multitask", "fp", 5.0)
    assert [(m.kind, m.questions, m.content) for m in back.messages] == [("text", [], None),
                                                                         ("image", ["what is it?"], None),
                                                                         ("text", [], None)]
    for a, b in ((em.analog, back.analog), (em.sentences, back.sentences), (em.photos[0], back.photos[0])):
        assert torch.equal(a.y, b.y) and torch.equal(a.h, b.h) and a.y.dtype == b.y.dtype == torch.complex64
    assert back.analog.side["gain"] == [1.5] and back.analog_rows == [1] and back.modalities == ["image"]
    assert (back.token_rows, back.frames_per_item, back.tokens_per_item) == ([0, 2], [2, 1], [30, 4])
    assert back.sentences.side["channel_uses"] == [10, 10, 9]
    assert back.photos[0].side["size"] == [[16, 8]] and back.photo_rows == [1]
    assert back.channel.channel == "rayleigh"
    assert b"SECRET" not in body  # no content crosses: only symbols and headers


def test_awgn_frames_carry_no_csi():
    header, back = frame.decode(frame.encode(emission("awgn"), "m", "fp"))
    assert back.analog.h is None and back.sentences.h is None and header.analog.h is None


def _parts(body: bytes):
    n = struct.unpack_from("<I", body, 8)[0]
    return json.loads(body[12:12 + n]), body[12 + n + (-(12 + n) % 8):]


def _build(header: dict, data: bytes, version=1, flags=0, magic=b"RSCF") -> bytes:
    text = json.dumps(header).encode()
    out = struct.pack("<4sHHI", magic, version, flags, len(text)) + text
    return out + bytes(-len(out) % 8) + data


@pytest.mark.parametrize("mutate, message", [
    (lambda h, d: (h, d[:-8]), "needs"),
    (lambda h, d: (h, d + b"\0" * 8), "after the last array"),
    (lambda h, d: ({**h, "arrays": [{**h["arrays"][0], "dtype": "<f8"}] + h["arrays"][1:]}, d), "dtype"),
    (lambda h, d: ({**h, "arrays": [{**h["arrays"][0], "shape": [-1, 6]}] + h["arrays"][1:]}, d), "shape"),
    (lambda h, d: ({**h, "surprise": 1}, d), "surprise"),
    (lambda h, d: ({**h, "snr_db": "loud"}, d), "snr_db"),
    (lambda h, d: ({**h, "items": []}, d), "items"),
    (lambda h, d: ({**h, "channel": {"channel": "wormhole"}}, d), "channel"),
    (lambda h, d: ({**h, "analog": {**h["analog"], "rows": [7]}}, d), "analog.rows"),
    (lambda h, d: ({**h, "analog": {**h["analog"], "gain": [float("nan")]}}, d), "gain"),
    (lambda h, d: ({**h, "analog": {**h["analog"], "y": 99}}, d), "names array 99"),
    (lambda h, d: ({**h, "sentences": {**h["sentences"], "frames": [1, 1]}}, d), "frames"),
    (lambda h, d: ({**h, "sentences": None}, d), "exactly once"),
    (lambda h, d: ({**h, "photos": {**h["photos"], "rows": [0]}}, d), "photos.rows"),
    (lambda h, d: ({**h, "analog": {**h["analog"], "h": 2}}, d), "CSI"),
])
def test_malformed_frames_are_named(mutate, message):
    header, data = _parts(frame.encode(emission(), "m", "fp"))
    h, d = mutate(header, data)
    with pytest.raises(InputError, match=message):
        frame.decode(_build(h, d))


@pytest.mark.parametrize("body, message", [
    (b"", "shorter"), (b"RSCF", "shorter"), (b"XXXX" + bytes(8), "magic"),
    (struct.pack("<4sHHI", b"RSCF", 2, 0, 0), "version 2"),
    (struct.pack("<4sHHI", b"RSCF", 1, 1, 0), "flags"),
    (struct.pack("<4sHHI", b"RSCF", 1, 0, 1 << 30), "does not fit"),
    (struct.pack("<4sHHI", b"RSCF", 1, 0, 3) + b"\xff\xfe{", "UTF-8 JSON"),
    (struct.pack("<4sHHI", b"RSCF", 1, 0, 2) + b"[]", "header"),
])
def test_broken_prefixes_and_headers(body, message):
    with pytest.raises(InputError, match=message):
        frame.decode(body)


def test_nan_and_inf_symbols_are_refused():
    header, data = _parts(frame.encode(emission(), "m", "fp"))
    for bad in (float("nan"), float("inf")):
        d = bytearray(data)
        d[0:4] = struct.pack("<f", bad)
        with pytest.raises(InputError, match="NaN or infinite"):
            frame.decode(_build(header, bytes(d)))


def test_a_noiseless_emission_has_no_frame():
    em = emission()
    em.analog.snr_db = float("inf")
    em.sentences = em.photos = None
    em.token_rows, em.photo_rows = [], []
    with pytest.raises(InputError, match="noiseless"):
        frame.encode(em, "m", "fp")
