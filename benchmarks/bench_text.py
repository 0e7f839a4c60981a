"""The token-level text link against its digital peers, on held-out English and on KB-held sentences (#11).

    python benchmarks/bench_text.py [--n 200] [--n-kb 100] [--k 4] [--snr=-5,0,5,10,15,20]
                                    [--channel awgn,rayleigh] [--beam 4] [--header 16] [--no-digital]
                                    [--codebook lattice|gaussian] [--sets novel,kb]

Sentences: WordNet's example sentences (Debian's wordnet-base), held out of all training and of every
KB ("novel"), and fortunes the receiver's KB holds ("kb"). Each is tokenised by SmolLM2's tokenizer, sent
through :class:`ragsc.channel.token_link.TokenLink` (``k`` complex symbols per token + a length header)
and decoded by :class:`ragsc.decoders.token_decoder.ChannelLMDecoder` (beam search over channel
likelihood + SmolLM2's log-prior), RAG off and on (the KB: the default KB's sentences, easy-VQA captions
and fortunes). Baselines at the same channel uses per sentence: SmolLM2 as an arithmetic source coder +
5G LDPC + QAM (best MCS per SNR over the set), the ideal bound with that source code (capacity budget,
error-free), and the noiseless link. Prints BLEU-1 / BLEU-4 (sacrebleu), MiniLM sentence similarity, the
exact-sentence rate, complex symbols per word (whitespace words), decoding speed at the batch size given
and the share of decoding time in the LM (for RAG: of the sentences that have a KB neighbour consistent
with what was received, the only ones RAG decodes differently; the others are copied from RAG off).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from _common import Table, add_results_args, machine, write_results  # noqa: E402

from ragsc.channel import ChannelConfig, IdealDigital, LMTextCodec  # noqa: E402
from ragsc.channel.token_link import TokenCodebook, TokenCodebookConfig, TokenLink  # noqa: E402
from ragsc.datasets.corpus import load_fortunes, text_corpus  # noqa: E402
from ragsc.datasets.heldout import wordnet_examples  # noqa: E402
from ragsc.decoders.lm import load_lm  # noqa: E402
from ragsc.decoders.token_decoder import ChannelLMDecoder  # noqa: E402
from ragsc.encoders import load_encoder  # noqa: E402
from ragsc.eval.digital import best_mcs  # noqa: E402
from ragsc.eval.metrics import bleu, sentence_similarity  # noqa: E402
from ragsc.report import table  # noqa: E402

HEADER = ["set", "sym/token", "channel", "SNR dB", "method", "sym/word", "BLEU-1", "BLEU-4", "similarity",
          "exact", "sent/s", "LM share"]


def metrics(out: list[str], ref: list[str], sim_encoder) -> list[str]:
    return [f"{bleu(out, ref, 1).mean():.3f}", f"{bleu(out, ref, 4).mean():.3f}",
            f"{sentence_similarity(out, ref, sim_encoder).mean():.3f}",
            f"{np.mean([a == b for a, b in zip(out, ref)]):.2f}"]


def decode(dec, observations, batch: int, kb=None) -> tuple[list[str], float, float]:
    out, total, lm_s = [], 0.0, 0.0
    for i in range(0, len(observations), batch):
        out += dec(observations[i:i + batch], kb)
        total, lm_s = total + dec.timings["total"], lm_s + dec.timings["lm"]
    return out, len(observations) / total, lm_s / total


def digital(sentences, uses, channel, snr, seed, codec) -> tuple[list[str], str]:
    """SmolLM2-coded separate coding, the MCS that delivers the most sentences at this SNR."""
    rx, mcs = best_mcs(sentences, ChannelConfig(channel=channel, seed=seed), channel, snr, seed, uses,
                       text_codec=codec)
    return rx.content, (f"{mcs[0]}-QAM R={mcs[1]:.2f}" if mcs else "no MCS delivers")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="held-out (novel) sentences")
    ap.add_argument("--n-kb", type=int, default=100, help="KB-held sentences (fortunes)")
    ap.add_argument("--k", default="4", help="complex symbols per token (comma list)")
    ap.add_argument("--snr", default="-5,0,5,10,15,20")
    ap.add_argument("--channel", default="awgn,rayleigh")
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--header", type=int, default=16, help="length-header symbols")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-digital", action="store_true", help="skip the LM-coded digital baselines")
    ap.add_argument("--sets", default="novel,kb", help="which sets: novel, kb")
    ap.add_argument("--codebook", default="lattice", help="token codebook: lattice or gaussian")
    ap.add_argument("--length-candidates", type=int, default=1, help="lengths read where the header doubts")
    add_results_args(ap)
    args = ap.parse_args()
    print("machine:", machine())
    t0 = time.perf_counter()
    lm = load_lm("smollm2")
    sim = load_encoder("embedded")
    sets = {"novel": wordnet_examples(args.n, seed=args.seed)}
    fortunes = list(load_fortunes())
    rng = np.random.default_rng(args.seed)
    sets["kb"] = [fortunes[i] for i in rng.choice(len(fortunes), args.n_kb, replace=False)]
    loaded = (f"SmolLM2 loaded in {time.perf_counter() - t0:.1f}s; {args.n} WordNet sentences "
              f"({np.mean([len(s.split()) for s in sets['novel']]):.1f} words on average), {args.n_kb} "
              "KB-held fortunes")
    print(loaded + "\n", flush=True)
    codec = LMTextCodec(lm)
    rows = []
    for k in (int(x) for x in args.k.split(",")):
        cfg = TokenCodebookConfig(len(lm.tokenizer), k, seed=args.seed, kind=args.codebook)
        codebook = TokenCodebook(cfg)
        dec = ChannelLMDecoder(lm, codebook, beam=args.beam, length_candidates=args.length_candidates)
        kb = dec.sentences(list(text_corpus()))
        for name, sentences in ((k_, v) for k_, v in sets.items() if k_ in args.sets.split(",")):
            ids = dec.token_ids(sentences)
            words = sum(len(s.split()) for s in sentences)
            for channel in args.channel.split(","):
                link = TokenLink(ChannelConfig(channel=channel, seed=args.seed), codebook,
                                 header_symbols=args.header)
                for snr in (float(x) for x in args.snr.split(",")):
                    rx = link(ids, snr_db=snr)
                    uses = rx.meta["channel_uses_per_item"]
                    per_word = f"{sum(uses) / words:.2f}"
                    head = [name, f"{k}", channel, f"{snr:g}"]
                    off, speed, share = decode(dec, rx.content, args.batch)
                    rows.append(head + ["token link", per_word] + metrics(off, sentences, sim)
                                + [f"{speed:.1f}", f"{share:.0%}"])
                    # RAG: a sentence with no consistent KB neighbour decodes exactly as without RAG
                    # (ChannelLMDecoder.decode_ids), so only the others are decoded again
                    again = [i for i, o in enumerate(rx.content) if dec.neighbours(o, kb)]
                    on = list(off)
                    if again:
                        redo, speed, share = decode(dec, [rx.content[i] for i in again], args.batch, kb)
                        for i, text in zip(again, redo):
                            on[i] = text
                    rows.append(head + ["token link + RAG", per_word] + metrics(on, sentences, sim)
                                + [f"{speed:.1f}" if again else "-", f"{share:.0%}" if again else "-"])
                    if not args.no_digital:
                        out, mcs = digital(sentences, uses, channel, snr, args.seed, codec)
                        rows.append(head + [f"LM code + LDPC ({mcs})", per_word]
                                    + metrics(out, sentences, sim) + ["-", "-"])
                        ideal = IdealDigital(ChannelConfig(channel=channel, seed=args.seed),
                                             text_codec=codec)(sentences, snr, channel_uses=uses)
                        rows.append(head + ["ideal (LM code, capacity)", per_word]
                                    + metrics(ideal.content, sentences, sim) + ["-", "-"])
                    print(table(rows[-4:] if not args.no_digital else rows[-2:], HEADER), flush=True)
            clean = link(ids, noiseless=True)  # the noiseless bound
            out, _, _ = decode(dec, clean.content, args.batch)
            rows.append([name, f"{k}", "-", "-", "noiseless bound", per_word] + metrics(out, sentences, sim)
                        + ["-", "-"])
    print()
    print(table(rows, HEADER))
    write_results("bench_text", [Table("text_link", HEADER, rows,
                                       title=f"the token-level text link, beam {args.beam}, "
                                             f"{args.codebook} codebook")], args=args, notes=[loaded])


if __name__ == "__main__":
    main()
