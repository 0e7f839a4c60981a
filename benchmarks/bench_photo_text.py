"""Captions and answers for real photos over the channel: the photo development set, test split.

    python benchmarks/bench_photo_text.py [--spec pipelines/multitask.yaml] [--snr -5,0,10,20]
        [--channels awgn,rayleigh] [--split test] [--no-choices]

The development set (``ragsc.datasets.photo_questions``): 53 real photos from sources no ragsc model
trains on and no KB holds (scikit-image, scikit-learn, matplotlib, Debian's plasma wallpapers and
Fashion-MNIST), our captions and 108 questions with their accepted answers; every third photo is the
validation split, the rest the test split. Each photo crosses the spec's pipeline (its embedding on the
analog link, its pixels through the image JSCC) with its questions; the receiver's caption is scored by the
encoder's cosine to our caption, its answers by exact match after normalisation. The noiseless receiver
(the same symbols without noise) is the reference of the caption goal.

``choices`` (on the validation split only, never the test split): the settings the shipped specs use were
chosen here: what the describer reads (the received embedding or the decoded photo embedded again) and how
it captions (the recognised names / retrieved caption, or SmolLM2 writing from them).

Writes docs/results/bench_photo_text.json.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import yaml  # noqa: E402
from _common import Table, add_results_args, write_results  # noqa: E402

from ragsc.channel.sweep import parse_channels  # noqa: E402
from ragsc.datasets.photo_questions import dev_photos  # noqa: E402
from ragsc.decoders.photo_text import DescriberSettings  # noqa: E402
from ragsc.eval.photo_text import evaluate_photo_text  # noqa: E402
from ragsc.pipelines import Pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COLS = ["channel", "SNR dB", "caption cos", "vs noiseless", "VQA acc", "yes/no", "open", "s / photo"]


def rnd(x: float | None, digits: int) -> float | None:
    """``x`` rounded; None (a ratio without a reference, an accuracy without such questions) kept."""
    return None if x is None else round(x, digits)


def row(channel: str, key: str, r: dict) -> list:
    return [
        channel,
        key,
        rnd(r["caption_cosine"], 3),
        rnd(r["caption_ratio"], 3),
        rnd(r["accuracy"], 3),
        rnd(r["accuracy_yes_no"], 3),
        rnd(r["accuracy_open"], 3),
        rnd(r["seconds_per_photo"], 2),
    ]


def choices(spec: dict, parts: dict) -> Table:
    """The describer's settings compared on the validation split at 0 dB and noiseless (AWGN)."""
    photos = dev_photos("validation")
    rows = []
    for describe, caption in (("embedding", "labels"), ("embedding", "lm"), ("photo", "labels")):
        s = {**spec, "decoder": {**spec.get("decoder", {}), "describe": describe}}
        pipe = Pipeline.from_config(s, **parts)
        pipe.receiver.describer.settings = DescriberSettings(caption=caption)
        r = evaluate_photo_text(pipe, photos, [0.0], channel="awgn")
        rows.append(
            [
                describe,
                caption,
                rnd(r["noiseless"]["caption_cosine"], 3),
                rnd(r["0"]["caption_cosine"], 3),
                rnd(r["0"]["caption_ratio"], 3),
                rnd(r["noiseless"]["accuracy"], 3),
                rnd(r["0"]["accuracy"], 3),
            ]
        )
        print(rows[-1], flush=True)
    return Table(
        "choices",
        [
            "reads",
            "caption",
            "caption cos noiseless",
            "caption cos 0 dB",
            "vs noiseless",
            "VQA acc noiseless",
            "VQA acc 0 dB",
        ],
        rows,
        title=f"validation split ({len(photos)} photos), AWGN: what the describer reads and how it captions",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spec", type=Path, default=ROOT / "pipelines" / "multitask.yaml")
    ap.add_argument("--snr", default="-5,0,10,20", help="comma-separated SNRs in dB")
    ap.add_argument("--channels", default="awgn,rayleigh")
    ap.add_argument("--split", default="test", choices=["test", "validation", "all"])
    ap.add_argument("--no-choices", action="store_true", help="skip the validation-split comparison")
    ap.add_argument("--examples", type=int, default=6, help="photos whose captions and answers are listed")
    add_results_args(ap)
    args = ap.parse_args()
    snrs = [float(x) for x in args.snr.split(",")]
    channels = parse_channels(args.channels)
    spec = yaml.safe_load(args.spec.read_text())
    pipe = Pipeline.from_config(spec)
    if pipe.receiver.describer is None or pipe.retriever is None:
        raise SystemExit(f"{args.spec}: the benchmark needs open captions or answers (decoder.caption / vqa: "
                         "open) and knowledge bases")
    parts = {
        "encoder": pipe.encoder,
        "decoders": pipe.decoders,
        "lm": pipe.receiver.lm,
        "jscc": pipe.jscc,
        **dict(zip(("local", "global_"), (dict(pipe.retriever.kbs).get(s) for s in ("local", "global")))),
    }
    photos = dev_photos(args.split)
    t0 = time.time()
    rows, examples, results = [], [], {}
    for ch in channels:
        r = evaluate_photo_text(pipe, photos, snrs, channel=ch, examples=args.examples)
        results[ch] = r
        for key, v in r.items():
            rows.append(row(ch, key, v))
            print(rows[-1], flush=True)
            for e in v.pop("examples", []):
                if ch == channels[0] and key in ("noiseless", "0", "10"):
                    examples.append(
                        [
                            key,
                            e["photo"],
                            e["caption"],
                            e["reference"],
                            "; ".join(f"{q} -> {a} ({ref})" for q, a, ref in e["answers"]),
                        ]
                    )
    tables = [
        Table(
            "rows",
            COLS,
            rows,
            title=f"{args.split} split: {len(photos)} photos, "
            f"{sum(len(p.questions) for p in photos)} questions, spec {args.spec.name}",
        ),
        Table(
            "examples",
            ["SNR", "photo", "caption", "our caption", "answers (accepted)"],
            examples,
            title="what the receiver said",
        ),
    ]
    if not args.no_choices:
        tables.insert(1, choices(spec, parts))
    notes = goal_lines(results)
    notes.append(f"wall time {time.time() - t0:.0f} s")
    for n in notes:
        print(n)
    write_results("bench_photo_text", tables, args=args, notes=notes)


def goal_lines(results: dict) -> list[str]:
    out = []
    for ch, r in results.items():
        if "10" in r:
            acc = r["10"]["accuracy"]
            out.append(
                f"{ch}: VQA accuracy at 10 dB {acc:.3f} (goal >= 0.6: {'met' if acc >= 0.6 else 'MISSED'}; "
                f"noiseless receiver {r['noiseless']['accuracy']:.3f})"
            )
        if "0" in r and r["0"]["caption_ratio"] is not None:
            ratio = r["0"]["caption_ratio"]
            out.append(
                f"{ch}: caption similarity at 0 dB {r['0']['caption_cosine']:.3f} = {ratio:.2f} of the "
                f"noiseless receiver's {r['noiseless']['caption_cosine']:.3f} (goal >= 0.8: "
                f"{'met' if ratio >= 0.8 else 'MISSED'})"
            )
    return out


if __name__ == "__main__":
    main()
