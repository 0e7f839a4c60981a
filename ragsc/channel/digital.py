"""Digital baselines on the same channel and the same number of channel uses.

* :class:`CodedPHY` — the shared physical layer: CRC + 5G LDPC (Sionna's NR transport-block
  encoder/decoder: TB CRC, code-block segmentation, LDPC, rate matching, scrambling) + Gray QAM
  (Sionna's Mapper / APP Demapper) over a :class:`~ragsc.channel.models.Channel`, or uncoded QAM.
* :class:`DigitalLink` — path (a): semantic tokens quantised (4/8-bit) -> bits -> PHY -> dequantised.
* :class:`SeparateCoding` — path (b): classic separate source-channel coding of the raw content
  (text: UTF-8 + deflate, or a language model's arithmetic code,
  :class:`~ragsc.channel.lm_codec.LMTextCodec`; images: WebP/JPEG rate-matched to the bit budget
  ``k * log2(M) * R``).
* :class:`IdealDigital` — path (c): the same source codecs given ``k * log2(1 + SNR)`` bits
  (capacity-achieving channel code, no errors).

A failed CRC gives the documented fallback (the cliff): zero features (tokens), an empty string
(text), a flat mean-grey image (images).

The content paths take an optional per-item channel-use budget, ``path(items, snr_db, channel_uses=[k_i])``
(it overrides ``k_symbols`` item by item): a token-level text link spends its own number of symbols on
each sentence, and its digital peers are compared at the same number per sentence.

Each path holds the channel in a :class:`~ragsc.config.ChannelConfig` (``path.config``) and its
modulation and coding in a :class:`CodingConfig` (``path.coding``); keyword overrides of either's
fields may be passed directly (``DigitalLink(channel="rayleigh", k_symbols=96, modulation=16)``).
"""

from __future__ import annotations

import contextlib
import io
import math
import numbers
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import Field, field_validator

from ragsc.channel.codecs import (
    DeflateTextCodec,
    ImageCodec,
    bits_to_bytes,
    bytes_to_bits,
    dequantize,
    features_that_fit,
    quantize,
)
from ragsc.channel.models import Channel, equalize_for_detection, snr_db_to_no
from ragsc.channel.path import Received, TransmissionPath, as_tokens, path_configs
from ragsc.config import ChannelConfig, Config
from ragsc.errors import ConfigError, InputError
from ragsc.types import SemanticTokens


class CodingConfig(Config):
    """Modulation and coding of the digital paths (the channel itself is a :class:`ChannelConfig`)."""

    modulation: int = Field(4, description="QAM order M: 4, 16 or 64")
    code_rate: float = Field(0.5, gt=0.0, lt=1.0)
    coded: bool = True
    quant_bits: int = Field(8, ge=1, le=16, description="bits per feature when semantic tokens are quantised")
    ldpc_iterations: int = Field(20, ge=1)

    @field_validator("modulation")
    @classmethod
    def _power_of_4(cls, v: int) -> int:
        if v < 4 or v & (v - 1) or int(math.log2(v)) % 2:
            raise ValueError(f"modulation order must be a power of 4 (4, 16, 64, ...), got {v}")
        return v

    @property
    def bits_per_symbol(self) -> int:
        return int(math.log2(self.modulation))


def _configs(config: ChannelConfig | None, coding: CodingConfig | None, overrides: dict,
             what: str) -> tuple[ChannelConfig, CodingConfig]:
    channel, coding = path_configs(config, overrides, (CodingConfig, coding), what=what)
    if channel.k_symbols is None:
        raise ConfigError(f"{what}: k_symbols must be set (the channel-use budget of every item)")
    return channel, coding


@dataclass
class PHYResult:
    bits: torch.Tensor  # [N, K] decided information bits
    crc_ok: torch.Tensor  # [N] bool (all True for uncoded)
    bit_errors: int
    n_bits: int


class CodedPHY:
    """Bits -> (CRC + LDPC) -> QAM -> channel -> equaliser -> APP demapper -> (LDPC + CRC) -> bits.

    ``info_bits`` is the number of information bits per item the budget allows: for coded links
    the 5G transport-block size Sionna picks for ``k_symbols * log2(M)`` coded bits at rate R.
    """

    def __init__(self, config: ChannelConfig, coding: CodingConfig | None = None) -> None:
        from sionna.phy.mapping import Demapper, Mapper

        self.config, self.coding = config, coding or CodingConfig()
        c, cc = config, self.coding
        if c.k_symbols is None:
            raise ConfigError("the coded PHY needs k_symbols (the channel-use budget of every item)")
        self.channel = Channel(c.channel, c.fading, c.rician_k, c.seed)
        m = cc.bits_per_symbol
        self.n_coded = c.k_symbols * m
        self.mapper = Mapper("qam", m, precision="single")
        self.demapper = Demapper("app", "qam", m, precision="single")
        if cc.coded:
            from sionna.phy.nr import TBDecoder, TBEncoder

            try:
                with contextlib.redirect_stdout(io.StringIO()):  # Sionna prints a note on TB size rounding
                    self.encoder = TBEncoder(target_tb_size=max(24, int(self.n_coded * cc.code_rate)),
                                             num_coded_bits=self.n_coded, target_coderate=cc.code_rate,
                                             num_bits_per_symbol=m, precision="single")
            except Exception as exc:  # Sionna asserts on impossible TB / codeword sizes
                raise ConfigError(f"no 5G transport block fits k_symbols={c.k_symbols}, M={cc.modulation}, "
                                  f"R={cc.code_rate}: {exc}") from None
            self.decoder = TBDecoder(self.encoder, num_bp_iter=cc.ldpc_iterations, precision="single")
            self.info_bits = int(self.encoder.k)
        else:
            self.info_bits = self.n_coded

    def __call__(self, bits: torch.Tensor, snr_db: float) -> PHYResult:
        if bits.ndim != 2 or bits.shape[1] != self.info_bits:
            raise InputError(f"PHY expects bits of shape [N, {self.info_bits}], got {tuple(bits.shape)}")
        no = snr_db_to_no(snr_db)
        coded = self.encoder(bits) if self.coding.coded else bits
        x = self.mapper(coded)
        y, h = self.channel(x, no)
        x_eq, no_eff = equalize_for_detection(y, h, no, self.config.csi, self.config.equalizer)
        llr = self.demapper(x_eq, no_eff)
        if self.coding.coded:
            decided, crc = self.decoder(llr)
            crc_ok = crc.reshape(-1).bool()
        else:
            decided = (llr > 0).float()  # Sionna's LLR convention: log p(b=1) / p(b=0)
            crc_ok = torch.ones(bits.shape[0], dtype=torch.bool)
        errors = int((decided != bits).sum())
        return PHYResult(decided, crc_ok, errors, bits.numel())


# ----------------------------------------------------------------------------- path (a)


class DigitalLink(TransmissionPath):
    """Quantised semantic tokens over the coded PHY: the digital twin of :class:`~ragsc.channel.AnalogLink`.

    As many leading features as fit the budget are sent (``b`` bits each, plus a float16 scale);
    with a transform (importance ordering) the leading ones are the most important.
    """

    def __init__(self, config: ChannelConfig | None = None, coding: CodingConfig | None = None,
                 transform=None, **overrides) -> None:
        self.config, self.coding = _configs(config, coding, overrides, "digital link")
        self.phy = CodedPHY(self.config, self.coding)
        self.transform = transform

    def __call__(self, tokens: SemanticTokens | torch.Tensor, snr_db: float | None = None) -> Received:
        snr = self.snr(snr_db)
        st = as_tokens(tokens)
        z = st.embeddings.float()
        coeffs = self.transform.encode(z) if self.transform is not None else z
        b = self.coding.quant_bits
        n_send = features_that_fit(self.phy.info_bits, b, coeffs.shape[1])
        if n_send == 0:
            raise ConfigError(f"the bit budget ({self.phy.info_bits} information bits) cannot carry one "
                              f"{b}-bit feature plus its 16-bit scale: raise k_symbols, M or R")
        payload = quantize(coeffs, b, n_send)
        bits = F.pad(payload, (0, self.phy.info_bits - payload.shape[1]))
        res = self.phy(bits, snr)
        received = dequantize(res.bits, b, n_send, coeffs.shape[1])
        received[~res.crc_ok] = 0.0  # fallback: a failed CRC carries no information
        sent = dequantize(bits, b, n_send, coeffs.shape[1])
        z_hat = self.transform.decode(received) if self.transform is not None else received
        out = st.replace(F.normalize(z_hat, dim=-1), path="digital")
        meta = {"path": "digital", "channel": self.config.channel, "features_sent": n_send,
                "info_bits": self.phy.info_bits,
                "bler": 1.0 - res.crc_ok.float().mean().item(),
                "ber": res.bit_errors / max(1, res.n_bits), "k_symbols": self.config.k_symbols}
        return Received(out, received[:, :n_send], sent[:, :n_send], self.config.k_symbols, snr, meta,
                        ok=res.crc_ok)


# ----------------------------------------------------------------------------- path (b)


def _codec_for(items, image_format: str, text_codec):
    if isinstance(items, (str, Image.Image)) or not isinstance(items, (list, tuple)):
        raise InputError(f"a content path sends a list of texts or PIL images, got {type(items).__name__}")
    if not items:
        raise InputError("empty batch: nothing to transmit")
    if all(isinstance(x, str) for x in items):
        return text_codec, "text"
    if all(isinstance(x, Image.Image) for x in items):
        return ImageCodec(image_format), "image"
    raise InputError("separate coding sends a batch of texts or a batch of PIL images, "
                     "not a mix or other types")


def _fallback(item, kind: str):
    if kind == "text":
        return ""
    return Image.new("RGB", item.size, (128, 128, 128))  # mean grey of an 8-bit image


def _channel_uses(channel_uses, n_items: int, default: int) -> list[int]:
    """Each item's channel-use budget: ``channel_uses`` (one positive int per item) or ``default`` for all."""
    if channel_uses is None:
        return [default] * n_items
    if isinstance(channel_uses, (str, bytes)) or not hasattr(channel_uses, "__len__"):
        raise InputError(f"channel_uses is a list of ints, one per item, got {type(channel_uses).__name__}")
    ks = list(channel_uses)
    if len(ks) != n_items:
        raise InputError(f"channel_uses has {len(ks)} entries for {n_items} items: give one per item")
    if not all(isinstance(k, numbers.Integral) and not isinstance(k, bool) and 0 < k <= 1_000_000
               for k in ks):
        raise InputError(f"channel_uses must be ints in [1, 1000000] (complex symbols per item), got {ks}")
    return [int(k) for k in ks]


def _content_received(content: list, ok: list[bool], encoded: list, budgets: list[int], ks: list[int],
                      snr: float, meta: dict) -> Received:
    """A content path's :class:`Received`: decoded items, delivery flags and the bit accounting in
    ``meta``; ``channel_uses`` is the items' mean (rounded), ``meta["channel_uses_per_item"]`` the list."""
    meta = {**meta, "bits_used": [0 if e is None else 8 * len(e) for e in encoded], "budget_bits": budgets,
            "channel_uses_per_item": ks}
    return Received(None, None, None, round(sum(ks) / len(ks)), snr, meta, content=content,
                    ok=torch.tensor(ok, dtype=torch.bool))


class SeparateCoding(TransmissionPath):
    """Classic separate source-channel coding of raw texts or images over the coded PHY.

    Call ``rx = sc(items, snr_db=None, channel_uses=None)`` on a list of texts or of PIL images:
    ``rx.content`` holds the decoded items, ``rx.ok`` which were delivered, ``rx.meta`` the payload and
    budget bits per item, BLER and BER. The source codec gets the PHY's information-bit budget; a payload
    that does not fit at any quality, or a failed CRC, yields the fallback (empty text / mean-grey image).

    Parameters
    ----------
    text_codec
        The source codec of texts (``encode(text, max_bits) -> bytes | None``, ``decode(bytes) -> str``):
        :class:`~ragsc.channel.codecs.DeflateTextCodec` (UTF-8 + deflate) by default, or e.g.
        :class:`~ragsc.channel.lm_codec.LMTextCodec` (a language model's arithmetic code).

    Notes
    -----
    ``channel_uses`` (one int per item) overrides ``k_symbols`` item by item; items are grouped by
    budget, one PHY per distinct budget (built once, cached). An item whose budget no 5G transport block
    fits is not delivered (fallback, ``ok`` False, budget 0 bits). ``rx.channel_uses`` is then the
    items' mean (rounded) and ``meta["channel_uses_per_item"]`` the list.
    """

    def __init__(self, config: ChannelConfig | None = None, coding: CodingConfig | None = None,
                 image_format: str = "webp", text_codec=None, **overrides) -> None:
        self.config, self.coding = _configs(config, coding, overrides, "separate coding")
        self.phy = CodedPHY(self.config, self.coding)
        self._phys: dict[int, CodedPHY | None] = {self.config.k_symbols: self.phy}
        ImageCodec(image_format)  # reject an unknown format now, not at the first image
        self.image_format = image_format
        self.text_codec = DeflateTextCodec() if text_codec is None else text_codec

    def phy_for(self, k_symbols: int) -> CodedPHY | None:
        """The PHY of a ``k_symbols`` budget (cached), or ``None`` when no transport block fits it."""
        if k_symbols not in self._phys:
            try:
                with warnings.catch_warnings():  # Sionna warns on the way to refusing a tiny block
                    warnings.simplefilter("ignore", UserWarning)
                    phy = CodedPHY(self.config.model_copy(update={"k_symbols": k_symbols}), self.coding)
            except ConfigError:
                phy = None
            self._phys[k_symbols] = phy
        return self._phys[k_symbols]

    def __call__(self, items: list, snr_db: float | None = None, channel_uses: list[int] | None = None
                 ) -> Received:
        snr = self.snr(snr_db)
        codec, kind = _codec_for(items, self.image_format, self.text_codec)
        items = list(items)
        ks = _channel_uses(channel_uses, len(items), self.config.k_symbols)
        phys = {k: self.phy_for(k) for k in dict.fromkeys(ks)}
        budgets = [phys[k].info_bits if phys[k] is not None else 0 for k in ks]
        encoded = [codec.encode(x, b) if b > 0 else None for x, b in zip(items, budgets)]
        # only items whose payload fits are transmitted (the others fall back without using the PHY),
        # one PHY call per budget
        rows, crc_ok, bit_errors, n_bits = {}, {}, 0, 0
        for k, phy in phys.items():
            sent = [i for i, e in enumerate(encoded) if e is not None and ks[i] == k]
            if not sent:
                continue
            res = phy(torch.stack([bytes_to_bits(encoded[i], phy.info_bits) for i in sent]), snr)
            rows.update(zip(sent, res.bits))
            crc_ok.update(zip(sent, res.crc_ok.tolist()))
            bit_errors, n_bits = bit_errors + res.bit_errors, n_bits + res.n_bits
        out, ok = [], []
        for i, (item, enc) in enumerate(zip(items, encoded)):
            good, row = enc is not None and crc_ok.get(i, False), rows.get(i)
            if good:
                try:
                    out.append(codec.decode(bits_to_bytes(row)))
                except Exception:  # a CRC pass with a corrupt payload is possible (rare); treat as failure
                    good = False
            if not good:
                out.append(_fallback(item, kind))
            ok.append(good)
        # bler / ber over the transmitted codewords (nan when no payload fitted the budget)
        nan = float("nan")
        return _content_received(out, ok, encoded, budgets, ks, snr,
                                 {"path": "separate", "channel": self.config.channel, "kind": kind,
                                  "transmitted": len(crc_ok),
                                  "bler": 1.0 - sum(crc_ok.values()) / len(crc_ok) if crc_ok else nan,
                                  "ber": bit_errors / max(1, n_bits) if crc_ok else nan})


# ----------------------------------------------------------------------------- path (c)


class IdealDigital(TransmissionPath):
    """The ideal digital bound: the source gets ``k * log2(1 + |h|^2 SNR)`` bits, delivered error-free.

    On AWGN ``|h| = 1`` (Shannon capacity); with block fading the item's own realisation gives its
    instantaneous capacity (transmitter CSI, no outage); fast fading uses the mean over the item's
    symbols.

    Call ``rx = ideal(x, snr_db=None, channel_uses=None)``: semantic tokens (or a float tensor
    ``[N, D]``) are quantised (``coding.quant_bits`` per feature, in ``transform``'s basis when one is
    given) at that budget; a list of texts or PIL images goes through the source codec at that budget
    (``rx.content``), texts through ``text_codec`` (default :class:`~ragsc.channel.codecs.DeflateTextCodec`).
    ``channel_uses`` (one int per item) overrides ``k_symbols`` item by item: each item's budget is
    the capacity of its own channel uses (``rx.channel_uses`` the mean, rounded).
    """

    def __init__(self, config: ChannelConfig | None = None, coding: CodingConfig | None = None,
                 transform=None, image_format: str = "webp", text_codec=None, **overrides) -> None:
        self.config, self.coding = _configs(config, coding, overrides, "ideal digital")
        self.channel = Channel(self.config.channel, self.config.fading, self.config.rician_k,
                               self.config.seed)
        ImageCodec(image_format)
        self.image_format, self.transform = image_format, transform
        self.text_codec = DeflateTextCodec() if text_codec is None else text_codec

    def budgets(self, n_items: int, snr_db: float, channel_uses: list[int] | None = None) -> list[int]:
        """Capacity in bits of each of ``n_items`` items' channel uses (``k_symbols`` each, or
        ``channel_uses[i]``); draws their fading."""
        ks = _channel_uses(channel_uses, n_items, self.config.k_symbols)
        snr = 1.0 / snr_db_to_no(snr_db)
        h = self.channel.coefficients(n_items, max(ks))
        rates = torch.log2(1 + h.abs() ** 2 * snr)  # [N, 1] (AWGN, block fading) or [N, max k] (fast)
        budgets = [0] * n_items
        for k in dict.fromkeys(ks):  # one mean per distinct budget over each item's first k symbols
            idx = [i for i, ki in enumerate(ks) if ki == k]
            capacity = rates[idx, :k].mean(dim=1)
            for i, c in zip(idx, capacity.tolist()):
                budgets[i] = int(math.floor(k * c))
        return budgets

    def __call__(self, x, snr_db: float | None = None, channel_uses: list[int] | None = None) -> Received:
        snr = self.snr(snr_db)
        if isinstance(x, (SemanticTokens, torch.Tensor)):
            st = as_tokens(x)
            return self._tokens(st, snr, _channel_uses(channel_uses, st.embeddings.shape[0],
                                                       self.config.k_symbols))
        codec, kind = _codec_for(x, self.image_format, self.text_codec)
        return self._content(list(x), codec, kind, snr, _channel_uses(channel_uses, len(x),
                                                                     self.config.k_symbols))

    def _content(self, items: list, codec, kind: str, snr: float, ks: list[int]) -> Received:
        budgets = self.budgets(len(items), snr, ks)
        encoded = [codec.encode(x, b) for x, b in zip(items, budgets)]
        out = [codec.decode(e) if e is not None else _fallback(x, kind) for x, e in zip(items, encoded)]
        return _content_received(out, [e is not None for e in encoded], encoded, budgets, ks, snr,
                                 {"path": "ideal", "channel": self.config.channel, "kind": kind})

    def _tokens(self, st: SemanticTokens, snr: float, ks: list[int]) -> Received:
        t = self.transform
        coeffs = t.encode(st.embeddings.float()) if t is not None else st.embeddings.float()
        b = self.coding.quant_bits
        rows = []
        for row, budget in zip(coeffs, self.budgets(coeffs.shape[0], snr, ks)):
            n_send = features_that_fit(budget, b, coeffs.shape[1])
            rows.append(dequantize(quantize(row[None], b, n_send), b, n_send, coeffs.shape[1])[0] if n_send
                        else torch.zeros(coeffs.shape[1]))
        received = torch.stack(rows)
        z_hat = t.decode(received) if t is not None else received
        out = st.replace(F.normalize(z_hat, dim=-1), path="ideal")
        return Received(out, received, coeffs, round(sum(ks) / len(ks)), snr,
                        {"path": "ideal", "channel": self.config.channel, "channel_uses_per_item": ks})
