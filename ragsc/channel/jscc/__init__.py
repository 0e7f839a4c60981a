"""The image JSCC: a learned joint source-channel code for photos of any size.

* :class:`JSCCConfig` (``config.py``) — architecture, rates (bandwidth ratios as code levels) and training
  ranges; saved with the weights (:mod:`ragsc.saved`, kind ``image-jscc``).
* :class:`JSCCCodec` (``codec.py``) — the network: SNR-adaptive ConvNeXt encoder and decoder, several ratios,
  and an optional side-information branch for photos the receiver holds.
"""

from ragsc.channel.jscc.codec import JSCCCodec
from ragsc.channel.jscc.config import JSCCConfig, parse_ratio
from ragsc.channel.jscc.link import Arrival, JSCCLink

__all__ = ["Arrival", "JSCCCodec", "JSCCConfig", "JSCCLink", "parse_ratio"]
