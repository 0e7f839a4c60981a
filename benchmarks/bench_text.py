"""The token-level text link on held-out English (issue #11, first measurements).

    python benchmarks/bench_text.py [--n 40] [--k 4,8] [--snr 0,5,10] [--channel awgn,rayleigh] [--beam 4]

Sentences: WordNet's example sentences (Debian's wordnet-base), held out of all training and of every
KB. Each is tokenised by SmolLM2's tokenizer, sent through :class:`ragsc.channel.token_link.TokenLink`
(``k`` complex symbols per token + a 16-symbol length header) and decoded by
:class:`ragsc.decoders.token_decoder.ChannelLMDecoder` (beam search over channel likelihood + SmolLM2's
log-prior), and without the prior (per-token maximum likelihood) for comparison. Prints BLEU-1 /
BLEU-4 (sacrebleu), the exact-sentence rate, complex symbols per word (whitespace words), decoding
speed at the batch size given, and the share of decoding time spent in the LM.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from _common import machine  # noqa: E402

from ragsc.channel import ChannelConfig  # noqa: E402
from ragsc.channel.token_link import TokenCodebook, TokenCodebookConfig, TokenLink  # noqa: E402
from ragsc.datasets.heldout import wordnet_examples  # noqa: E402
from ragsc.decoders.lm import load_lm  # noqa: E402
from ragsc.decoders.token_decoder import ChannelLMDecoder  # noqa: E402
from ragsc.eval.metrics import bleu  # noqa: E402
from ragsc.report import table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40, help="held-out sentences")
    ap.add_argument("--k", default="4,8", help="complex symbols per token (comma list)")
    ap.add_argument("--snr", default="0,5,10")
    ap.add_argument("--channel", default="awgn,rayleigh")
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print("machine:", machine())
    t0 = time.perf_counter()
    lm = load_lm("smollm2")
    sentences = wordnet_examples(args.n, seed=args.seed)
    words = [len(s.split()) for s in sentences]
    print(f"SmolLM2 loaded in {time.perf_counter() - t0:.1f}s; {args.n} WordNet sentences, "
          f"{np.mean(words):.1f} words on average\n")
    rows = []
    for k in (int(x) for x in args.k.split(",")):
        codebook = TokenCodebook(TokenCodebookConfig(len(lm.tokenizer), k, seed=args.seed))
        with_lm = ChannelLMDecoder(lm, codebook, beam=args.beam, lm_weight=1.0)
        alone = ChannelLMDecoder(lm, codebook, beam=1, lm_weight=0.0)
        ids = with_lm.token_ids(sentences)
        for channel in args.channel.split(","):
            for snr in (float(x) for x in args.snr.split(",")):
                link = TokenLink(ChannelConfig(channel=channel, seed=args.seed), codebook)
                rx = link(ids, snr_db=snr)
                uses = rx.meta["channel_uses_per_item"]
                per_word = float(np.sum(uses) / np.sum(words))
                for name, dec in (("channel + LM", with_lm), ("channel alone", alone)):
                    out, total, lm_s = [], 0.0, 0.0
                    for i in range(0, len(sentences), args.batch):
                        out += dec(rx.content[i:i + args.batch])
                        total, lm_s = total + dec.timings["total"], lm_s + dec.timings["lm"]
                    exact = np.mean([a == b for a, b in zip(out, sentences)])
                    b1, b4 = bleu(out, sentences, 1).mean(), bleu(out, sentences, 4).mean()
                    rows.append([f"{k}", channel, f"{snr:g}", name, f"{per_word:.2f}", f"{b1:.3f}",
                                 f"{b4:.3f}", f"{exact:.2f}", f"{len(sentences) / total:.1f}",
                                 f"{lm_s / total:.0%}" if name == "channel + LM" else "-"])
                print(f"k={k} {channel} {snr:g} dB: BLEU-1 {rows[-2][5]} with the LM, {rows[-1][5]} alone; "
                      f"e.g. {sentences[0]!r} -> {with_lm(rx.content[:1])[0]!r}", flush=True)
    print()
    print(table(rows, HEADER))


HEADER = ["sym/token", "channel", "SNR dB", "receiver", "sym/word", "BLEU-1", "BLEU-4", "exact",
          "sent/s", "LM share"]

if __name__ == "__main__":
    main()
