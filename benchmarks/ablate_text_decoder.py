"""The text receiver's beam width and LM weight, chosen on a validation split.

    python benchmarks/ablate_text_decoder.py [--n 64] [--k 4] [--snr 5,10] [--beam 4,8]
                                             [--lm-weight 0.7,0.85,1] [--codebook lattice,gaussian]

Validation: WordNet example sentences drawn with seed 1, minus the 200 test sentences of
``bench_text.py`` (seed 0), so the choice never sees the reported set. Prints BLEU-1 and the exact rate
per setting over AWGN, and the decoding speed (batch 32), so the cost of a wider beam shows beside its gain.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from _common import Table, add_results_args, machine, wordnet_validation, write_results  # noqa: E402

from ragsc.channel import ChannelConfig  # noqa: E402
from ragsc.channel.token_link import TokenCodebook, TokenCodebookConfig, TokenLink  # noqa: E402
from ragsc.decoders.lm import load_lm  # noqa: E402
from ragsc.decoders.token_decoder import ChannelLMDecoder  # noqa: E402
from ragsc.eval.metrics import bleu  # noqa: E402
from ragsc.report import table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--snr", default="5,10")
    ap.add_argument("--beam", default="4,8")
    ap.add_argument("--lm-weight", default="0.7,0.85,1")
    ap.add_argument("--codebook", default="lattice", help="token codebook kinds (comma list)")
    ap.add_argument("--header", type=int, default=16, help="length-header symbols")
    add_results_args(ap)
    args = ap.parse_args()
    print("machine:", machine())
    val = wordnet_validation(args.n)
    lm = load_lm("smollm2")
    rows = []
    for kind in args.codebook.split(","):
        cb = TokenCodebook(TokenCodebookConfig(len(lm.tokenizer), args.k, kind=kind))
        ids = ChannelLMDecoder(lm, cb).token_ids(val)
        for snr in (float(x) for x in args.snr.split(",")):
            link = TokenLink(ChannelConfig(channel="awgn", seed=1), cb, header_symbols=args.header)
            rx = link(ids, snr_db=snr)
            for beam in (int(x) for x in args.beam.split(",")):
                for w in (float(x) for x in args.lm_weight.split(",")):
                    dec = ChannelLMDecoder(lm, cb, beam=beam, lm_weight=w)
                    out, total = [], 0.0
                    for i in range(0, len(val), 32):
                        out += dec(rx.content[i:i + 32])
                        total += dec.timings["total"]
                    exact = np.mean([a == b for a, b in zip(out, val)])
                    rows.append([kind, f"{snr:g}", f"{beam}", f"{w:g}", f"{bleu(out, val, 1).mean():.3f}",
                                 f"{exact:.2f}", f"{len(val) / total:.1f}"])
                    print(rows[-1], flush=True)
    out = Table("decoder", ["codebook", "AWGN dB", "beam", "lm_weight", "BLEU-1", "exact", "sent/s"], rows,
                title=f"{len(val)} validation sentences, {args.k} symbols per token, AWGN")
    print(table(out.rows, out.columns))
    write_results("ablate_text_decoder", [out], args=args)


if __name__ == "__main__":
    main()
