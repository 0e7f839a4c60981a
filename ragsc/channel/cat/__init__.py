"""CAT: a channel-aware transformer codec between semantic tokens and the channel (after RKD-SC).

* :class:`CATConfig` (``config.py``) — the architecture, the channels and SNRs it is trained for, and (after
  calibration) its rate table :class:`CATCalibration`; saved as every model is (:mod:`ragsc.saved`, kind
  ``cat-codec``: :meth:`CATCodec.save` / :meth:`CATCodec.load`).
* :class:`CATCodec` (``codec.py``) — the network: a transformer transmitter that writes an *ordered* code
  (the first ``n`` symbols of one codeword are a code of their own for each ``n`` in ``levels``) and a
  transformer receiver that reads the target embedding out of the equalised prefix; both ends are told the
  SNR and the channel kind. It trains through the project's own, differentiable
  :class:`~ragsc.channel.models.Channel` (:mod:`ragsc.distill.cat`).
* The rate policy (``policy.py``) belongs to the codec: :func:`ragsc.distill.cat.calibrate` measures the mean
  cosine to the target per (channel, SNR, level) on a validation split through the real channel, and
  :meth:`CATCodec.choose_length` picks the fewest symbols whose measured quality reaches a target; fewer
  symbols where the channel is good.
* :class:`CATLink` (``link.py``) — the transmission path: semantic tokens in, a
  :class:`~ragsc.channel.path.Received` out, through the project's :class:`~ragsc.channel.models.Channel`,
  with the length per item chosen by the rate policy (or fixed).
"""

from ragsc.channel.cat.codec import CATCodec, normalize_power
from ragsc.channel.cat.config import CATCalibration, CATConfig
from ragsc.channel.cat.link import CATLink

__all__ = ["CATCalibration", "CATCodec", "CATConfig", "CATLink", "normalize_power"]
