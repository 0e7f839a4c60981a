"""The image JSCC: a learned joint source-channel code for photos of any size.

* :class:`JSCCConfig` (``config.py``) — architecture, rates (bandwidth ratios as code levels) and training
  ranges; saved with the weights (:mod:`ragsc.saved`, kind ``image-jscc``).
* :class:`JSCCCodec` (``codec.py``) — the network: SNR-adaptive ConvNeXt encoder and decoder, an ordered code,
  and an optional side-information branch for photos the receiver holds.
"""

from ragsc.channel.jscc.codec import JSCCCodec
from ragsc.channel.jscc.config import JSCCConfig, parse_ratio

__all__ = ["JSCCCodec", "JSCCConfig", "parse_ratio"]
