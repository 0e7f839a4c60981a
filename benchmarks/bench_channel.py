"""Channel figures: analog throughput and overhead vs. raw Sionna blocks, digital throughput.

    python benchmarks/bench_channel.py [--items 20000] [--repeats 5]

Prints (never asserts): complex symbols/s through ``ragsc.channel.AnalogLink`` and through the same link
written by hand around the raw Sionna blocks on the same tensors (pairing into complex symbols, power
normalisation, ``AWGN`` / ``GenerateFlatFadingChannel``, MMSE equalisation, re-normalisation), their
ratio (the ragsc layer's overhead, goal <= 1.1); the bare ``AWGN`` block alone for scale; and
information bits/s of the coded digital path (Sionna 5G TB encoder/decoder + QAM).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from _common import Table, add_results_args, best_time, best_times, machine, write_results  # noqa: E402

from ragsc.channel import AnalogLink, ChannelConfig, CodedPHY, CodingConfig
from ragsc.report import table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--repeats", type=int, default=9)
    add_results_args(ap)
    args = ap.parse_args()
    print(f"machine: {machine()}")

    from sionna.phy.channel import AWGN, GenerateFlatFadingChannel

    z = F.normalize(torch.randn(args.items, args.dim), dim=-1)
    k = args.dim // 2
    n_sym = args.items * k
    snr_db, no = 10.0, 0.1
    awgn, gen = AWGN(precision="single"), GenerateFlatFadingChannel(1, 1, precision="single")

    def by_hand(fading: bool):
        x = torch.view_as_complex(z.reshape(args.items, k, 2))
        x = x * (z.square().sum(1, keepdim=True) / k).rsqrt()
        if fading:
            h = gen(args.items).reshape(-1, 1)
            x_hat = h.conj() * awgn(h * x, no) / (h.abs() ** 2 + no)
        else:
            x_hat = awgn(x, no) * (1 / (1 + no))
        return F.normalize(torch.view_as_real(x_hat).reshape(args.items, -1), dim=-1)

    x0 = torch.view_as_complex(z.reshape(args.items, k, 2).contiguous())
    rows = []
    with torch.inference_mode():
        for name in ("awgn", "rayleigh"):
            link = AnalogLink(channel=name, snr_db=snr_db, k_symbols=k)
            t_ours, t_raw = best_times(lambda link=link: link(z),
                                       lambda name=name: by_hand(name == "rayleigh"), args.repeats)
            rows.append([f"analog {name}", f"{n_sym / t_ours:.3g}", f"{n_sym / t_raw:.3g}",
                         f"{t_ours / t_raw:.3f}"])
        t_awgn = best_time(lambda: awgn(x0, no), args.repeats)
    analog = Table("analog", ["path", "ragsc symbols/s", "by hand on Sionna blocks, symbols/s",
                              "ratio (goal <= 1.1)"], rows,
                   title=f"analog link, {args.items} items x {k} complex symbols, SNR {snr_db:g} dB")
    analog.notes.append(f"(the bare Sionna AWGN block alone: {n_sym / t_awgn:.3g} symbols/s)")
    print(table(analog.rows, analog.columns))
    print(analog.notes[0])

    rows = []
    for m, rate in ((4, 0.5), (16, 0.5), (64, 0.75)):
        phy = CodedPHY(ChannelConfig(k_symbols=1024), CodingConfig(modulation=m, code_rate=rate))
        bits = torch.randint(0, 2, (200, phy.info_bits)).float()
        t = best_time(lambda phy=phy, bits=bits: phy(bits, 20.0), max(1, args.repeats // 2))
        rows.append([f"{m}-QAM, R={rate}", str(phy.info_bits), f"{bits.numel() / t:.3g}",
                     f"{200 * 1024 / t:.3g}"])
    digital = Table("digital", ["digital (5G LDPC, 20 iters, SNR 20 dB)", "info bits / codeword",
                                "info bits/s", "symbols/s"], rows,
                    title="coded digital path, 200 codewords of 1024 complex symbols")
    print()
    print(table(digital.rows, digital.columns))
    write_results("bench_channel", [analog, digital], args=args)


if __name__ == "__main__":
    main()
