"""A measured abstraction of the coded PHY, for digital baselines on photos too large to simulate bit by bit.

Separate coding of a photo at 1/12 of its size spends ~10^5 channel uses: the full 5G chain
(:class:`~ragsc.channel.CodedPHY`) takes seconds per photo and MCS on 2 CPU cores, and a benchmark grid has
thousands. The standard remedy of link-level studies (3GPP's PHY abstraction) is used instead: the block
error rate of one LDPC code block is *measured* with the real chain (:meth:`BlerTable.measure`: Sionna's
TB encoder / decoder, QAM, the AWGN channel) on an SNR grid per MCS; a transport block of ``C`` code blocks
at effective SNR ``s`` (``|h|^2 SNR`` for block fading: every code block sees the same ``h``) is then
delivered
with probability ``(1 - BLER(s))^C`` (:meth:`BlerTable.p_success`), and its payload size is the 5G TB size
Sionna computes for that MCS and budget (:func:`tb_layout`). Tests check the abstraction against the real
chain on small photos.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ragsc.errors import ConfigError


def tb_layout(k_symbols: int, modulation: int, code_rate: float) -> tuple[int, int] | None:
    """``(information bits, code blocks)`` of the transport block :class:`~ragsc.channel.CodedPHY` sends in
    ``k_symbols`` complex symbols of ``modulation``-QAM at ``code_rate``; ``None`` when no TB fits."""
    from sionna.phy.nr.utils import calculate_tb_size

    m = int(math.log2(modulation))
    n_coded = k_symbols * m
    target = max(24, int(n_coded * code_rate))
    try:
        cfg = calculate_tb_size(
            target_tb_size=target,
            num_coded_bits=n_coded,
            target_coderate=code_rate,
            modulation_order=m,
            verbose=False,
        )
    except Exception:  # Sionna asserts on impossible sizes
        return None
    tb_size, cb_size, n_cbs, cw = int(cfg[0]), int(cfg[1]), int(cfg[2]), torch.as_tensor(cfg[5])
    if tb_size > int(cfg[3]) + int(cw.sum()):
        return None
    rate = cb_size / int(cw.max())
    if not 1 / 5 <= rate <= 0.95:  # the rates Sionna's LDPC5GEncoder refuses (38.212)
        return None
    # 38.212's base graph choice; Sionna's base graph 1 takes only rates above 1/3 (no repetition)
    bg1 = not (cb_size <= 292 or (cb_size <= 3824 and rate <= 0.67) or rate <= 0.25)
    if bg1 and rate <= 1 / 3:
        return None
    return target, n_cbs


def block_bits(code_rate: float, info_bits: int) -> int:
    """The code block a :class:`BlerTable` measures at ``code_rate``: ``info_bits``, or at most 3,000 bits at
    rates up to 1/3, where 5G uses base graph 2 (code blocks of at most 3,824 bits with their CRC)."""
    return info_bits if code_rate > 1 / 3 else min(info_bits, 3000)


@dataclass
class BlerTable:
    """Code-block error rates per MCS on an SNR grid (AWGN, Es/N0 in dB), measured with the real chain.

    Attributes
    ----------
    mcs
        ``[(modulation, code rate), ...]``.
    snr_db
        Per MCS, its grid (ascending).
    bler
        Per MCS, the measured code-block error rate at each grid point.
    info_bits, blocks, ldpc_iterations
        The code block measured (information bits; see :func:`block_bits`), how many per point, the
        decoder's iterations.
    """

    mcs: list[tuple[int, float]]
    snr_db: list[list[float]]
    bler: list[list[float]]
    info_bits: int
    blocks: int
    ldpc_iterations: int

    @classmethod
    def measure(
        cls,
        mcs,
        grids,
        *,
        info_bits: int = 8000,
        blocks: int = 8,
        seed: int = 0,
        ldpc_iterations: int = 20,
        progress: bool = False,
    ) -> BlerTable:
        """Measure each MCS's code-block BLER on its SNR grid: ``blocks`` single-code-block transport blocks
        of
        about ``info_bits`` bits per point through :class:`~ragsc.channel.CodedPHY` on AWGN."""
        from tqdm.auto import tqdm

        from ragsc.channel.digital import CodedPHY, CodingConfig
        from ragsc.config import ChannelConfig

        if len(mcs) != len(grids):
            raise ConfigError("one SNR grid per MCS")
        out = []
        g = torch.Generator().manual_seed(seed)
        total = sum(len(x) for x in grids)
        with tqdm(total=total, desc="BLER table", disable=not progress) as bar:
            for (m, r), grid in zip(mcs, grids):
                k = math.ceil(block_bits(r, info_bits) / (math.log2(m) * r))
                phy = CodedPHY(
                    ChannelConfig(channel="awgn", k_symbols=k, seed=seed),
                    CodingConfig(modulation=m, code_rate=r, ldpc_iterations=ldpc_iterations),
                )
                row = []
                for snr in grid:
                    bits = torch.randint(0, 2, (blocks, phy.info_bits), generator=g).float()
                    row.append(1.0 - float(phy(bits, float(snr)).crc_ok.float().mean()))
                    bar.update(1)
                out.append(row)
        return cls(
            [tuple(x) for x in mcs],
            [list(map(float, x)) for x in grids],
            out,
            info_bits,
            blocks,
            ldpc_iterations,
        )

    def p_success(self, mcs: tuple[int, float], snr_db: float, n_blocks: int) -> float:
        """Probability that a TB of ``n_blocks`` code blocks at (effective) ``snr_db`` passes its CRC: BLER
        interpolated linearly on the grid, 1 below it and the last measured value above it."""
        i = self.mcs.index(tuple(mcs))
        grid, bler = self.snr_db[i], self.bler[i]
        b = 1.0 if snr_db < grid[0] else float(np.interp(snr_db, grid, bler))
        return (1.0 - b) ** n_blocks

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> BlerTable:
        return cls(**{**data, "mcs": [tuple(x) for x in data["mcs"]]})
