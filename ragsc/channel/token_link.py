"""Token-level transmission of text: a sentence crosses the channel as a variable-length symbol sequence.

The transmitter maps each token of a tokenizer's vocabulary to a fixed codeword of
``symbols_per_token`` complex symbols (:class:`TokenCodebook`); a sentence of ``L`` tokens costs
``L * symbols_per_token`` channel uses plus a length header of ``header_symbols`` (the length is sent
as a codeword of its own, decided by maximum likelihood at the receiver) and, for a lattice codebook,
``gain_symbols`` that say by how much the frame was scaled to unit power.

Codebooks (``TokenCodebookConfig.kind``): ``lattice`` (the default) gives each token a point of a dense
lattice (E8 for 4 symbols per token), the frequent tokens on the low-energy shells: a minimum distance
and a shaping gain, scaled frame by frame to unit power. ``gaussian``: i.i.d. complex Gaussian
codewords of unit power, spread apart at random rather than clustered like an LM's embedding table,
which measured far better as a channel code (DESIGN.md §5). Either is a deterministic function of its
config, so nothing needs to be stored: both ends rebuild it.

:class:`TokenLink` is a :class:`~ragsc.channel.path.TransmissionPath`: ``rx = link(token_ids,
snr_db=None)`` takes a list of token-id lists and returns a :class:`~ragsc.channel.path.Received`
whose ``content`` holds one :class:`TokenObservation` per sentence (the equalised symbols and their
effective noise, what a receiver's likelihood needs) and whose ``meta["channel_uses_per_item"]`` counts
every symbol sent for each sentence, header and gain included (``rx.channel_uses`` is their mean, rounded).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ragsc import checks
from ragsc.channel.models import Channel, equalize_for_detection, snr_db_to_no
from ragsc.channel.path import Observed, Received, TransmissionPath, path_configs
from ragsc.config import ChannelConfig
from ragsc.errors import ConfigError, InputError


@dataclass(frozen=True)
class TokenCodebookConfig:
    """What a :class:`TokenCodebook` is built from (both ends rebuild the same codebook from it)."""

    vocab_size: int
    symbols_per_token: int = 8
    seed: int = 0
    kind: str = "lattice"
    band: int = 2048

    def __post_init__(self) -> None:
        for name in ("vocab_size", "symbols_per_token", "band"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"TokenCodebookConfig.{name} must be an integer >= 1, got {value!r}")
        if self.kind not in CODEBOOK_KINDS:
            raise ConfigError(f"TokenCodebookConfig.kind must be one of {CODEBOOK_KINDS}, got {self.kind!r}")


CODEBOOK_KINDS = ("lattice", "gaussian")
GAIN_STEP_DB = 0.25  # resolution of the per-frame power gain the header announces
MAX_GAINS = 64  # at most 16 dB of gain range: a frame that needs more is sent below unit power


def gaussian_codewords(n: int, k: int, seed: int) -> torch.Tensor:
    """``[n, k]`` complex64 codewords, i.i.d. CN(0, 1) from ``seed``, each scaled to power 1 per symbol."""
    g = torch.Generator().manual_seed(int(seed))
    c = torch.complex(torch.randn(n, k, generator=g), torch.randn(n, k, generator=g))
    return c / c.abs().square().mean(dim=1, keepdim=True).sqrt()


def lattice_codewords(n: int, k: int, band: int = 2048, seed: int = 0) -> torch.Tensor:
    """``[n, k]`` complex64: the ``n`` lowest-energy points of a ``2k``-dimensional lattice
    (:func:`~ragsc.channel.lattice.lattice_points`), scaled to mean power 1 per symbol over the ``n``
    codewords. Codeword ``i`` lies in the energy band of ranks ``[b, b + band)`` that holds ``i``, at a
    position in it drawn from ``seed``: the frequent (low-id) tokens cost little energy without all
    being each other's nearest neighbours (the LM's prior cannot tell apart tokens it finds equally
    likely). Chosen on WordNet validation sentences, 4 symbols per token, AWGN, BLEU-1 at 5 / 10 dB:
    bands of 2048 0.55 / 0.97, 512 0.44 / 0.96, 8192 0.53 / 0.96, sorted 0.42 / 0.97, fully shuffled
    0.43 / 0.93, Gaussian codewords 0.49 / 0.94 (64 sentences; at 128: 0.52 / 0.98 against Gaussian
    0.50 / 0.95; ``benchmarks/ablate_text_decoder.py --codebook lattice,gaussian``)."""
    from ragsc.channel.lattice import lattice_points

    p = torch.from_numpy(lattice_points(n, 2 * k)).float()
    c = torch.complex(p[:, 0::2], p[:, 1::2])
    g = torch.Generator().manual_seed(int(seed))
    order = torch.arange(n)
    for start in range(0, n, band):
        stop = min(n, start + band)
        order[start:stop] = start + torch.randperm(stop - start, generator=g)
    return (c / c.abs().square().mean().sqrt())[order]


class TokenCodebook:
    """One codeword of ``symbols_per_token`` complex symbols per token id (``codewords`` ``[V, k]``).

    ``kind="lattice"`` (the default): token ``i`` gets a lattice point of about the ``i``-th lowest
    energy (:func:`lattice_codewords`), so the low ids (bytes and the first BPE merges: the frequent
    tokens) cost the least energy, and each frame is scaled up to unit power by one of the ``gains``
    (announced in the link's header).
    ``kind="gaussian"``: i.i.d. complex Gaussian codewords, each of unit power (one gain, 1).
    """

    def __init__(self, config: TokenCodebookConfig) -> None:
        self.config = config
        v, k = config.vocab_size, config.symbols_per_token
        if config.kind == "gaussian":
            self.codewords = gaussian_codewords(v, k, config.seed)
            self.gains = torch.ones(1)
        else:
            self.codewords = lattice_codewords(v, k, config.band, config.seed)
            power = self.codewords.abs().square().mean(dim=1)
            floor = power[power > 0].min() if bool((power > 0).any()) else power.max()
            span_db = 10 * torch.log10(power.max() / floor).item()
            n = min(MAX_GAINS, int(span_db / GAIN_STEP_DB) + 1)
            self.gains = power.max().rsqrt() * 10 ** (torch.arange(n) * GAIN_STEP_DB / 20)
        self._power = self.codewords.abs().square().mean(dim=1)  # [V] per-symbol power of each codeword

    def gain_index(self, ids: list[int]) -> int:
        """The largest gain that keeps a frame of ``ids`` at or below unit power per symbol."""
        if not ids or len(self.gains) == 1:
            return 0
        power = float(self._power[torch.tensor(ids)].mean())
        fits = (self.gains.square() * power <= 1 + 1e-6).nonzero().flatten()
        return int(fits.max()) if len(fits) else 0

    @property
    def symbols_per_token(self) -> int:
        return self.config.symbols_per_token

    def __len__(self) -> int:
        return self.config.vocab_size

    def log_likelihood(self, symbols: torch.Tensor, no_eff: torch.Tensor) -> torch.Tensor:
        """``[L, V]`` log-likelihood (up to a constant) of every token at each of ``L`` received positions.

        ``symbols`` and ``no_eff`` are ``[L, k]``: equalised symbols and their effective complex noise
        variance, so ``log p(y_t | v) = -sum_k |y_tk - c_vk|^2 / no_tk``.
        """
        w = 1.0 / no_eff.float()  # [L, k]
        c = self.codewords
        cross = (symbols * w).to(torch.complex64) @ c.conj().T  # [L, V]
        return -((symbols.abs().square() * w).sum(1, keepdim=True) - 2 * cross.real + w @ c.abs().square().T)


@dataclass
class TokenObservation:
    """What the receiver got for one sentence.

    ``symbols`` ``[L, k]`` equalised token symbols and ``no_eff`` ``[L, k]`` their effective noise
    variance, for the ``length`` tokens the header was decoded as (``length`` may be wrong at low SNR:
    the receiver only knows what it decoded), in the codebook's scale: divided by the frame's decoded
    gain ``g`` (``y / g = c + n / g``, noise ``no / g^2``), so ``-|y - c|^2 / no`` is the channel
    log-likelihood. ``sent_length`` is the transmitter's, for scoring. ``buffer`` / ``buffer_no``
    ``[max_tokens, k]`` hold every token position the receiver listened to, as received (beyond the
    sentence: noise alone), ``length_loglik`` ``[max_tokens + 1]`` the header's log-likelihood of each
    length, so a receiver can weigh other lengths (:meth:`with_length`); ``gain`` is the frame gain the
    receiver decoded (1 for a codebook of unit-power codewords).
    """

    symbols: torch.Tensor
    no_eff: torch.Tensor
    length: int
    sent_length: int
    buffer: torch.Tensor | None = None
    buffer_no: torch.Tensor | None = None
    length_loglik: torch.Tensor | None = None
    gain: float = 1.0

    def with_length(self, length: int) -> TokenObservation:
        """The same reception read as a sentence of ``length`` tokens."""
        if self.buffer is None or not 0 <= length <= self.buffer.shape[0]:
            raise InputError(f"cannot read {length} tokens from this observation")
        g = self.gain
        return TokenObservation(self.buffer[:length] / g, self.buffer_no[:length] / g ** 2, length,
                                self.sent_length, self.buffer, self.buffer_no, self.length_loglik, g)

    def candidate_lengths(self, limit: int, margin: float = 10.0) -> list[int]:
        """Up to ``limit`` lengths the header makes plausible: its ``length`` first, then the next most
        likely ones within ``margin`` nats of the best (only ``length`` without header likelihoods)."""
        if self.length_loglik is None or limit <= 1:
            return [self.length]
        ll = self.length_loglik
        top = ll.topk(min(limit, ll.numel()))
        # a frame is never empty: 0 is a reading only when the header decided it
        keep = [int(i) for v, i in zip(top.values, top.indices) if v >= top.values[0] - margin and i > 0]
        return [self.length] + [x for x in keep if x != self.length][: limit - 1]

    def reading_loglik(self, span: int) -> float:
        """What reading this observation at ``length`` adds to its tokens' channel log-likelihood, so that
        readings of one sentence compare over the same ``span`` received positions: the header's
        log-likelihood of ``length``, the Gaussian constant of the ``length`` token positions, and for
        positions ``length..span-1`` the likelihood of unknown unit-power content plus noise,
        CN(0, 1 + no) (whatever follows a frame; nothing is assumed silent)."""
        no = self.buffer_no[:span].double()
        tokens = -torch.log(torch.pi * no[:self.length]).sum()
        y, no_rest = self.buffer[self.length:span], no[self.length:]
        rest = -(y.abs().square().double() / (1 + no_rest) + torch.log(torch.pi * (1 + no_rest))).sum()
        return float(self.length_loglik[self.length] + tokens + rest)


class TokenLink(TransmissionPath):
    """Token sequences over the channel, ``symbols_per_token`` complex symbols per token plus a length header.

    Parameters
    ----------
    config
        The :class:`~ragsc.config.ChannelConfig` (its ``k_symbols`` is not used: the length is the
        sentence's; keyword overrides of its fields are merged in).
    codebook
        The :class:`TokenCodebook` (its vocabulary must cover every id sent).
    max_tokens
        The longest sentence the header can describe; a longer one is a :class:`InputError` (split it first).
    header_symbols
        Complex symbols of the length header (a codeword per length ``0..max_tokens``, decided by ML).
        Measured length-error rates of 129 random codewords on AWGN: 16 symbols 35 % / 0.6 % / 0 at
        -5 / 0 / 5 dB (8 symbols: 69 % / 20 % / 0.2 %).
    gain_symbols
        Unit-power symbols that carry the frame's gain index (its phase) when the codebook has more
        than one gain (a lattice codebook); none for unit-power (Gaussian) codewords.
    """

    def __init__(self, config: ChannelConfig | None = None, codebook: TokenCodebook | None = None, *,
                 max_tokens: int = 128, header_symbols: int = 16, gain_symbols: int = 2,
                 **overrides) -> None:
        (self.config,) = path_configs(config, overrides, what="token link")
        if codebook is None:
            raise ConfigError("a token link needs a TokenCodebook (its vocabulary is the tokenizer's)")
        max_tokens = checks.integer(max_tokens, "max_tokens")
        header_symbols = checks.integer(header_symbols, "header_symbols")
        gain_symbols = checks.integer(gain_symbols, "gain_symbols")
        c = self.config
        self.codebook, self.max_tokens, self.header_symbols = codebook, max_tokens, header_symbols
        self.channel = Channel(c.channel, c.fading, c.rician_k, c.seed)
        # lengths get their own codebook, seeded apart from the tokens'
        self.header_codewords = gaussian_codewords(max_tokens + 1, header_symbols, codebook.config.seed + 1)
        # a codebook of unequal codeword energies scales each frame to unit power; the gain's index is sent
        # as the phase of gain_symbols unit-power symbols, on an arc of 1.5 pi: an error lands on a nearby
        # gain (a fraction of a dB), never on the far end
        n = len(codebook.gains)
        self.gain_symbols = gain_symbols if n > 1 else 0
        self._phase = torch.polar(torch.ones(n), 1.5 * torch.pi * torch.arange(n) / max(n - 1, 1))

    def channel_uses(self, length: int) -> int:
        """Complex symbols a sentence of ``length`` tokens costs (header and gain symbols included)."""
        return self.header_symbols + self.gain_symbols + length * self.codebook.symbols_per_token

    def __call__(self, token_ids: list[list[int]], snr_db: float | None = None,
                 noiseless: bool = False) -> Received:
        """Send ``token_ids`` (one list per sentence); ``noiseless``: the same symbols delivered exactly
        (the bound; ``rx.snr_db`` is ``inf``)."""
        return self.read(self.observe(token_ids, snr_db, noiseless))

    @property
    def width(self) -> int:
        """Complex symbols the receiver listens to per frame: the header, the gain and ``max_tokens``
        tokens (beyond a sentence's own tokens, noise alone)."""
        return self.header_symbols + self.gain_symbols + self.max_tokens * self.codebook.symbols_per_token

    def observe(self, token_ids: list[list[int]], snr_db: float | None = None,
                noiseless: bool = False) -> Observed:
        """The transmitter and the channel: one row of :attr:`width` received symbols per sentence; the
        side information is each sentence's channel uses (bookkeeping: the receiver reads the length from
        the header) and, for scoring only, its sent length."""
        snr = float("inf") if noiseless else self.snr(snr_db)
        ids = self._check(token_ids)
        k, h, m = self.codebook.symbols_per_token, self.header_symbols, self.gain_symbols
        lengths = [len(x) for x in ids]
        # one row per sentence, zero-padded to max_tokens: a row shares one block-fading coefficient;
        # the padding carries no energy and is not counted (a receiver that reads it, for other lengths,
        # must not assume it silent: see TokenObservation.reading_loglik)
        x = torch.zeros(len(ids), self.width, dtype=torch.complex64)
        for i, row in enumerate(ids):
            x[i, :h] = self.header_codewords[len(row)]
            if m:
                j = self.codebook.gain_index(row)  # the frame scaled to (at most) unit power per symbol
                x[i, h:h + m] = self._phase[j]
            if row:
                g = self.codebook.gains[self.codebook.gain_index(row)] if m else 1.0
                x[i, h + m:h + m + len(row) * k] = g * self.codebook.codewords[torch.tensor(row)].reshape(-1)
        side = {"channel_uses": [self.channel_uses(n) for n in lengths], "sent_length": lengths}
        if noiseless:
            return Observed(x, None, snr, side, noiseless=True)
        y, hh = self.channel(x, snr_db_to_no(snr))
        return Observed(y, hh if self.config.csi == "perfect" else None, snr, side)

    def read(self, obs: Observed) -> Received:
        """The receiver: the length from the header, the gain, each frame's :class:`TokenObservation`."""
        k, h, m = self.codebook.symbols_per_token, self.header_symbols, self.gain_symbols
        if obs.noiseless:  # a tiny noise variance keeps the receiver's likelihood finite
            y_eq, no_eff = obs.y, torch.full(obs.y.shape, 1e-6)
        else:
            no = snr_db_to_no(obs.snr_db)
            y_eq, no_eff = equalize_for_detection(obs.y, obs.h, no, self.config.csi, self.config.equalizer)
            no_eff = no_eff.expand(y_eq.shape)
        length_ll = self._length_loglik(y_eq[:, :h], no_eff[:, :h])
        decided = length_ll.argmax(dim=1).tolist()
        gains = self._gains(y_eq[:, h:h + m], no_eff[:, h:h + m])
        sent_lengths = obs.side.get("sent_length") or [-1] * len(decided)  # -1: unknown to the receiver
        obs_out = []
        for i, (n_sent, n_rx) in enumerate(zip(sent_lengths, decided)):
            # the receiver reads as many positions as the header says (beyond what was sent: noise only)
            buf = y_eq[i, h + m:].reshape(self.max_tokens, k)
            buf_no = no_eff[i, h + m:].reshape(self.max_tokens, k)
            whole = TokenObservation(buf, buf_no, self.max_tokens, n_sent, buf, buf_no, length_ll[i],
                                     gains[i])
            obs_out.append(whole.with_length(n_rx))
        uses = list(obs.side["channel_uses"])
        meta = {"path": "token", "channel": "none" if obs.noiseless else self.config.channel,
                "channel_uses_per_item": uses, "symbols_per_token": k, "header_symbols": h,
                "gain_symbols": m,
                "length_errors": sum(o.length != o.sent_length for o in obs_out if o.sent_length >= 0)}
        return Received(None, None, None, round(sum(uses) / max(1, len(uses))), obs.snr_db, meta,
                        content=obs_out)

    def _gains(self, y: torch.Tensor, no_eff: torch.Tensor) -> list[float]:
        """Each frame's gain from its gain symbols: the level nearest their noise-weighted mean (the ML
        decision among the unit-power levels; 1 for every frame when no gain is sent)."""
        if y.shape[1] == 0:
            return [1.0] * y.shape[0]
        mean = (y / no_eff).sum(1) / (1.0 / no_eff.float()).sum(1)
        j = (mean[:, None] - self._phase[None]).abs().argmin(dim=1)
        return self.codebook.gains[j].tolist()

    def _length_loglik(self, y: torch.Tensor, no_eff: torch.Tensor) -> torch.Tensor:
        """``[N, max_tokens + 1]``: ``-sum_k |y_k - c_lk|^2 / no_k`` of each length codeword (the ML
        decision is its argmax)."""
        return -((y[:, None, :] - self.header_codewords[None]).abs().square() / no_eff[:, None, :]).sum(-1)

    def _check(self, token_ids) -> list[list[int]]:
        if isinstance(token_ids, (str, bytes)) or not isinstance(token_ids, (list, tuple)):
            raise InputError(f"a token link sends a list of token-id lists, got {type(token_ids).__name__}")
        if not token_ids:
            raise InputError("empty batch: nothing to transmit")
        out = []
        v = len(self.codebook)
        for i, row in enumerate(token_ids):
            row = list(row)
            if not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < v for t in row):
                raise InputError(f"item {i}: token ids must be integers in [0, {v}) "
                                 "(the codebook's vocabulary)")
            if len(row) > self.max_tokens:
                raise InputError(f"item {i}: {len(row)} tokens, more than the header's "
                                 f"max_tokens={self.max_tokens}; split the sentence")
            out.append(row)
        return out
