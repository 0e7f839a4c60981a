"""Information-bottleneck distillation against plain KD at equal data, and the data each needs (#12, point 2).

    python benchmarks/ablate_ib.py --store STORE --test TEST_STORE [--fractions 0.05,0.2,1]
                                   [--betas 0.001,0.01] [--epochs 6]

Both stores come from ``ragsc distill cache`` with the same teacher (e.g. easy-VQA train / test with
``--label-field shape``). Students: the same CNN (32 px, 16/32/64 channels) trained on a seeded share
of the training split, ``kd`` (cosine to the teacher + the task's cross-entropy) or ``ib`` (a 64-d
stochastic code, rate weight beta, same task term), the same number of steps at every share. beta is
chosen on the validation split (10 % of the training store); the test store is only for the figures:
cosine to the teacher and caption R@1.
"""

from __future__ import annotations

import argparse
import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import Table, add_results_args, machine, write_results  # noqa: E402

from ragsc.distill.store import TeacherStore  # noqa: E402
from ragsc.distill.student_nets import ImageStudentConfig  # noqa: E402
from ragsc.distill.train import evaluate_student, train_student  # noqa: E402
from ragsc.report import table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--fractions", default="0.05,0.2,1")
    ap.add_argument("--betas", default="0.001,0.01")
    ap.add_argument("--epochs", type=int, default=6)
    add_results_args(ap)
    args = ap.parse_args()
    print("machine:", machine())
    train, test = TeacherStore(args.store), TeacherStore(args.test)
    classes = len(train.labels)
    rows = []
    for frac in (float(f) for f in args.fractions.split(",")):
        runs = [("kd", None, ImageStudentConfig(image_size=32, widths=(16, 32, 64)))]
        runs += [("ib", float(b), ImageStudentConfig(image_size=32, widths=(16, 32, 64), code_dim=64,
                                                     num_classes=classes)) for b in args.betas.split(",")]
        best_ib = None
        for objective, beta, cfg in runs:
            # the same number of steps at every share of the data (epochs / share)
            r = train_student(train, cfg, objective=objective, beta=beta or 0.0, batch_size=64,
                              epochs=math.ceil(args.epochs / frac), data_fraction=frac)
            ev = evaluate_student(r.student, cfg, test)
            row = [f"{frac:g}", f"{r.history[0]['train_items']}", objective,
                   "-" if beta is None else f"{beta:g}", f"{r.best['val_cosine']:.3f}",
                   f"{ev['cosine']:.3f}", f"{ev.get('caption_r@1', 0):.3f}", f"{r.seconds:.0f}"]
            print(row, flush=True)
            if objective == "ib" and (best_ib is None or r.best["val_cosine"] > best_ib[0]):
                best_ib = (r.best["val_cosine"], row)
            elif objective == "kd":
                rows.append(row)
        rows.append(best_ib[1][:3] + [best_ib[1][3] + " (chosen on val)"] + best_ib[1][4:])
    out = Table("ib_vs_kd", ["data share", "train items", "objective", "beta", "val cosine", "test cosine",
                             "test caption R@1", "seconds"], rows,
                title="plain KD vs. information-bottleneck KD per share of the training data")
    print()
    print(table(out.rows, out.columns))
    write_results("ablate_ib", [out], args=args)


if __name__ == "__main__":
    main()
