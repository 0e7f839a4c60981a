"""Which prompt the text receiver's LM reads before the sentence, chosen on a validation split.

    python benchmarks/ablate_text_prompt.py [--n 40] [--k 4] [--snr 5]

Validation: WordNet example sentences drawn with seed 1, minus the 200 test sentences of
``bench_text.py`` (seed 0), so the choice never sees the reported set (``_common.wordnet_validation``;
the same 40 sentences as when the prompt was chosen against the first 100 test sentences: none of them
is among the other 100). SmolLM2's BOS
is ``<|im_start|>`` (chat markup follows it in training), so a plain-text prompt should give a better
prior for an English sentence; this measures it.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import Table, add_results_args, machine, wordnet_validation, write_results  # noqa: E402

from ragsc.channel import ChannelConfig  # noqa: E402
from ragsc.channel.token_link import TokenCodebook, TokenCodebookConfig, TokenLink  # noqa: E402
from ragsc.decoders.lm import load_lm  # noqa: E402
from ragsc.decoders.token_decoder import ChannelLMDecoder  # noqa: E402
from ragsc.eval.metrics import bleu  # noqa: E402
from ragsc.report import table  # noqa: E402

PROMPTS = ["", "\n", "Here is a sentence:\n", "Example sentence:\n",
           "The following text is written in English.\n"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--snr", default="5")
    add_results_args(ap)
    args = ap.parse_args()
    print("machine:", machine())
    val = wordnet_validation(args.n)
    lm = load_lm("smollm2")
    cb = TokenCodebook(TokenCodebookConfig(len(lm.tokenizer), args.k))
    rows = []
    for snr in (float(x) for x in args.snr.split(",")):
        for channel in ("awgn", "rayleigh"):
            ids = ChannelLMDecoder(lm, cb, prompt="").token_ids(val)
            rx = TokenLink(ChannelConfig(channel=channel, seed=1), cb)(ids, snr_db=snr)
            for prompt in PROMPTS:
                out = ChannelLMDecoder(lm, cb, beam=4, prompt=prompt)(rx.content)
                rows.append([repr(prompt) if prompt else "(BOS only)", channel, f"{snr:g}",
                             f"{bleu(out, val, 1).mean():.3f}", f"{bleu(out, val, 4).mean():.3f}"])
                print(rows[-1], flush=True)
    out = Table("prompt", ["prompt", "channel", "SNR dB", "BLEU-1", "BLEU-4"], rows,
                title=f"{len(val)} validation sentences, {args.k} symbols per token, beam 4")
    print(table(out.rows, out.columns))
    write_results("ablate_text_prompt", [out], args=args)


if __name__ == "__main__":
    main()
