"""The wireless link: semantic tokens over simulated channels, and the field's baselines.

Conventions (used everywhere in ragsc, stated once here)
--------------------------------------------------------
* **SNR** is Es/N0 per complex symbol, in dB: ``snr_db = 10 log10(Es / N0)``.
* **Average transmitted symbol power is 1** (Es = 1), so the complex noise variance is
  ``N0 = 10 ** (-snr_db / 10)``, i.e. ``N0 / 2`` per real dimension. Noise is added with a standard
  deviation, never a power.
* **A channel use is one complex symbol**, in every path (analog, digital, ideal); pilots count.
* **Bandwidth ratio** = ``k_symbols / source dimension`` (real source values, e.g. 384 for an
  embedding, 64*64*3 for an image).
* Fading is flat: ``y = h x + n`` with ``E|h|^2 = 1``; ``block`` fading draws one ``h`` per item
  (the item's k symbols share it), ``fast`` fading one per symbol. Rician:
  ``h = sqrt(K/(K+1)) + sqrt(1/(K+1)) h_rayleigh``.

Components
----------
Every transmission path is configured with one :class:`~ragsc.config.ChannelConfig` and called as
``rx = path(x, snr_db=None) -> Received`` (the link protocol, :mod:`~ragsc.channel.path`).

* :class:`Channel` (``models.py``): AWGN / Rayleigh / Rician on complex tensors, built on Sionna's
  ``AWGN`` and ``GenerateFlatFadingChannel`` blocks, seeded per instance.
* :class:`AnalogLink` (``analog.py``): JSCC-style analog transmission of :class:`~ragsc.types.SemanticTokens`.
* :class:`PCAOrdering` (``adaptive.py``): importance ordering of embeddings (principal axes), a
  ``transform`` for the analog link.
* :class:`CATLink` (``cat/``): the trained channel-adaptive path, a channel-aware transformer codec
  (:class:`CATCodec`, :class:`CATConfig`) conditioned on the SNR and the channel kind, whose calibrated
  rate policy sends fewer symbols where the channel is good; trained by :mod:`ragsc.distill.cat`.
* :class:`JSCCLink` (``jscc/``): photos of any size through a learned, SNR-adaptive image JSCC
  (:class:`JSCCCodec`, :class:`JSCCConfig`; an ordered code for several bandwidth ratios, side information
  and exact recognition of photos the receiver holds); trained by :mod:`ragsc.distill.image_jscc`.
* :class:`~ragsc.channel.phy_table.BlerTable` (``phy_table.py``): the coded PHY's measured abstraction
  (code-block BLER per MCS and SNR) for digital baselines on photos too large to simulate bit by bit.
* :func:`estimate_snr_db` (``models.py``): the SNR from known pilots (they cost channel uses).
* :mod:`~ragsc.channel.digital`: quantised tokens and classic separate source-channel coding over
  5G LDPC (Sionna's transport-block encoder/decoder) + QAM, and the ideal capacity bound.
* :class:`LMTextCodec` (``lm_codec.py``): a causal LM as an arithmetic source coder of texts, the
  strongest text codec for the digital paths (``SeparateCoding(cfg, text_codec=LMTextCodec(lm))``).
* :mod:`~ragsc.channel.theory`: closed forms the tests and plots compare against.
"""

from ragsc.channel.adaptive import PCAOrdering
from ragsc.channel.analog import AnalogLink
from ragsc.channel.cat import CATCalibration, CATCodec, CATConfig, CATLink
from ragsc.channel.digital import CodedPHY, CodingConfig, DigitalLink, IdealDigital, SeparateCoding
from ragsc.channel.jscc import JSCCCodec, JSCCConfig, JSCCLink
from ragsc.channel.lm_codec import LMTextCodec
from ragsc.channel.models import CHANNELS, Channel, equalize, estimate_snr_db, snr_db_to_no
from ragsc.channel.path import Received, TransmissionPath
from ragsc.config import ChannelConfig

__all__ = [
    "CHANNELS", "CATCalibration", "CATCodec", "CATConfig", "CATLink", "Channel", "ChannelConfig", "CodedPHY",
    "CodingConfig", "DigitalLink", "IdealDigital", "JSCCCodec", "JSCCConfig", "JSCCLink", "LMTextCodec",
    "AnalogLink", "PCAOrdering", "Received", "SeparateCoding", "TransmissionPath", "equalize",
    "estimate_snr_db", "snr_db_to_no",
]
