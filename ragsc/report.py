"""Plain-text tables for the CLI, the demo and the benchmarks."""

from __future__ import annotations


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def score_rows(scores: dict) -> list[list[str]]:
    return [
        [name, f"{s['image_to_caption_r1']:.3f}", f"{s['caption_to_image_r1']:.3f}", str(s["n_images"]),
         str(s["n_captions"]), f"{s['chance_i2t']:.3f}"]
        for name, s in scores.items()
    ]


SCORE_HEADER = ["set", "image->caption R@1", "caption->image R@1", "images", "captions", "chance"]
