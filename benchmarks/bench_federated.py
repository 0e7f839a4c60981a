"""Federated split fine-tuning (#13, points 2-4): 8 non-IID clients against centralised fine-tuning.

    python benchmarks/bench_federated.py [--data fashion-mnist,easy-vqa] [--rounds R] [--n-train N]
                                         [--n-test N] [--n-val 1000] [--no-select] [--central-epochs E]
                                         [--flower sim] [--flower-rounds 3] [--threads 1] [--out DIR]

For each dataset, the spec ``pipelines/federated/<dataset>.yaml`` (8 clients, Dirichlet alpha 0.5, 10 %
dropout per round, AWGN at 5 dB, 8 complex symbols per image; the shipped image student frozen, LoRA
adapters on its last convolution and projection, a fixed transmitter) is run in-process, and the same
model is fine-tuned centrally (one client holding all the training data, ``train.central_epochs`` epochs,
same learning rates and decay per epoch). Printed: the accuracy over the channel on the test items (mean of
the last 3 rounds / epochs, as single evaluations move by a point or two), federated / centralised (goal
>= 0.95) and the first round that reached 95 % of the centralised figure; the uplink per round (symbols,
labels, adapters) against full-model FedAvg's (every device-side parameter, frozen encoder included, from
each drawn client; goal <= 0.05); and the downlink. ``<out>/<dataset>.png``: accuracy vs round and vs
cumulative uplink bytes; ``<out>/results.json``. About 4 minutes on 2 cores without the selection.

Settings are chosen on a validation split, never on the test items: ``--n-val`` training items are held
back from the clients (``data.n_val``; the clients' items are the same in every run), and for each dataset
the federated runs of a small grid (``FED_GRID``: local epochs, whether the transmitter trains; then the
best of them at twice the spec's rounds) and the centralised runs of ``CENTRAL_GRID`` (whether the
transmitter trains, epochs)
are scored on them (mean of the last 3 rounds); the best of each is then run once and scored on the test
items. ``--no-select`` runs the spec's own settings. The selection adds about 40 minutes for
Fashion-MNIST on 2 cores.

The Flower row runs the first dataset's spec for ``--flower-rounds`` rounds in Flower's simulation engine
(Ray; ``--flower grpc``: a gRPC server and 8 client processes on localhost) and compares it with the
in-process run after the same rounds (same seeds: same clients drawn, same dropouts, same channel).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from _common import Table, add_results_args, machine, write_results  # noqa: E402

from ragsc._assets import asset_dir, home_dir  # noqa: E402
from ragsc.datasets import load_easy_vqa  # noqa: E402
from ragsc.federated import centralised_spec, load_spec, plot_runs, run_federated, spec_from  # noqa: E402


def _spec(dataset: str, args) -> object:
    d = load_spec(asset_dir("pipelines") / "federated" / f"{dataset}.yaml").model_dump(mode="json")
    if args.rounds:
        d["train"]["rounds"] = args.rounds
    sizes = {"train": None, "test": None}
    if dataset.startswith("easy-vqa"):  # a fixed, small data set: the overrides stop at its size
        sizes = {split: len(load_easy_vqa(split)) for split in sizes}
    for split, n in (("train", args.n_train), ("test", args.n_test)):
        if n:
            d["data"][f"n_{split}"] = min(n, sizes[split] or n)
    return spec_from(d)


# the clients' learning rate stays the spec's (0.003): 0.001 scored 0.598 vs 0.699 on Fashion-MNIST's
# validation items (1 local epoch, fixed transmitter) in a first, larger grid
FED_GRID = {"train.local_epochs": (1, 2), "train.train_transmitter": (False, True)}
CENTRAL_GRID = {"train.train_transmitter": (False, True), "train.central_epochs": (30, 60)}


def _split_size(dataset: str) -> int:
    """Items in the dataset's train split."""
    if dataset.startswith("easy-vqa"):
        return len(load_easy_vqa("train"))
    from ragsc.datasets.fashion_mnist import load_fashion_mnist

    return len(load_fashion_mnist("train")[1])


def _with(spec, **dotted) -> object:
    """``spec`` with ``section.field`` values replaced (``data.n_val=1000``)."""
    d = spec.model_dump(mode="json")
    for key, value in dotted.items():
        section, field = key.split(".")
        d[section][field] = value
    return spec_from(d)


def _last3(run) -> float:
    return sum(r.accuracy for r in run.rounds[-3:]) / len(run.rounds[-3:])


def _select(spec, grid: dict, central: bool) -> tuple[dict, list]:
    """The grid point with the best validation accuracy (mean of the last 3 rounds), and every score."""
    import itertools

    scored = []
    for values in itertools.product(*grid.values()):
        combo = dict(zip(grid, values))
        s = _with(spec, **{"data.evaluate_on": "validation"}, **combo)
        run = run_federated(centralised_spec(s) if central else s, "inprocess")
        scored.append((_last3(run), combo))
        settings = ", ".join(f"{k.partition('.')[2]}={v}" for k, v in combo.items())
        print(f"  {'centralised' if central else 'federated'} {settings}: validation "
              f"{scored[-1][0]:.3f} ({run.seconds:.0f} s)", flush=True)
    return max(scored, key=lambda t: t[0])[1], scored


def _row(dataset: str, fed, cen) -> dict:
    s = fed.summary()
    n = len(fed.rounds)
    fed_acc, cen_acc = _last3(fed), _last3(cen)
    at_goal = next((r.round for r in fed.rounds if r.accuracy >= 0.95 * cen_acc), None)
    return {"dataset": dataset, "federated_accuracy": fed_acc, "centralised_accuracy": cen_acc,
            "accuracy_ratio": fed_acc / cen_acc, "first_round_at_goal": at_goal,
            "uplink_per_round": s["uplink_bytes_per_round"],
            "uplink_breakdown": {k: sum(r.uplink[k] for r in fed.rounds) / n for k in fed.rounds[0].uplink},
            "downlink_per_round": s["downlink_bytes_per_round"],
            "full_fedavg_uplink_per_round": s["full_fedavg_uplink_per_round"],
            "uplink_ratio": s["uplink_ratio"],
            "trainable_params": s["trainable_params"], "device_params": s["device_params"],
            "skipped_rounds": s["skipped_rounds"], "dropouts": sum(len(r.dropped) for r in fed.rounds),
            "federated_seconds": fed.seconds, "centralised_seconds": cen.seconds,
            "federated_curve": [fed.initial_accuracy] + [r.accuracy for r in fed.rounds],
            "centralised_curve": [cen.initial_accuracy] + [r.accuracy for r in cen.rounds]}


def _md(cells: list[str]) -> str:
    """A Markdown table row, as the summary tables print."""
    return "| " + " | ".join(cells) + " |"


def _kb(x: float) -> str:
    return f"{x / 1e3:,.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="fashion-mnist,easy-vqa")
    ap.add_argument("--rounds", type=int, default=None, help="override every spec's train.rounds")
    ap.add_argument("--n-train", type=int, default=None, help="override data.n_train")
    ap.add_argument("--n-test", type=int, default=None, help="override data.n_test")
    ap.add_argument("--central-epochs", type=int, default=None, help="epochs of the centralised reference "
                    "(default: the spec's train.central_epochs; with selection, chosen on validation)")
    ap.add_argument("--n-val", type=int, default=1000, help="training items held back from the clients to "
                    "choose settings on (at most a fifth of an easy-VQA split)")
    ap.add_argument("--no-select", action="store_true", help="run the specs' own settings, choose nothing")
    ap.add_argument("--flower", default="sim", help="sim, grpc, sim,grpc or none: the engine comparison row")
    ap.add_argument("--flower-rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="default: RAGSC_HOME/bench/federated")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: on a shared 2-core machine the "
                    "small ops of a round run several times faster than with 2 spinning threads)")
    add_results_args(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = args.out or home_dir() / "bench" / "federated"
    out.mkdir(parents=True, exist_ok=True)
    print("machine:", machine(), flush=True)

    rows, results, first, pngs = [], {}, None, []
    for dataset in [d.strip() for d in args.data.split(",") if d.strip()]:
        spec = _spec(dataset, args)
        c, t = spec.clients, spec.train
        d, ch = spec.data, spec.channel
        print(f"\n{dataset}: {c.n} clients, alpha {c.alpha:g}, {c.fraction:g} per round, dropout "
              f"{c.dropout:g}; {t.rounds} rounds of {t.local_epochs} local epoch(s); {d.n_train or 'all'} "
              f"train / {d.n_test or 'all'} test items at {d.image_size or 64} px; {ch.channel} "
              f"{ch.snr_db:g} dB, {ch.k_symbols} symbols", flush=True)
        central = centralised_spec(spec, args.central_epochs)
        chosen = {}
        if not args.no_select:
            split = _split_size(dataset)
            # beside n_train items when the spec takes the first n_train, else a fifth of the split at most
            n_val = min(args.n_val, split - spec.data.n_train if spec.data.n_train else split // 5)
            if n_val < 1:
                raise SystemExit(f"{dataset}: n_train = {spec.data.n_train} leaves no training items to "
                                 "validate on: lower --n-train or use --no-select")
            spec = _with(spec, **{"data.n_val": n_val})
            print(f"choosing settings on {n_val} held-back training items (validation):", flush=True)
            best_fed, fed_scores = _select(spec, FED_GRID, central=False)
            # then the chosen setting trained twice as long (the centralised grid has its epochs too)
            longer, more = _select(spec, {**{k: (v,) for k, v in best_fed.items()},
                                          "train.rounds": (2 * spec.train.rounds,)}, central=False)
            if more[0][0] > max(score for score, _ in fed_scores):
                best_fed = longer
            fed_scores += more
            grid = dict(CENTRAL_GRID)
            if args.central_epochs:
                grid["train.central_epochs"] = (args.central_epochs,)
            best_cen, cen_scores = _select(spec, grid, central=True)
            chosen = {"federated": best_fed, "centralised": best_cen, "n_val": n_val,
                      "federated_scores": fed_scores, "centralised_scores": cen_scores}
            print(f"chosen: federated {best_fed}; centralised {best_cen}", flush=True)
            central = centralised_spec(_with(spec, **best_cen))
            spec = _with(spec, **best_fed)
        fed = run_federated(spec, "inprocess", progress=True)
        cen = run_federated(central, progress=True)
        first = first or (spec, fed)
        results[dataset] = {"spec": spec.model_dump(mode="json"), "selection": chosen,
                            "central_spec": central.model_dump(mode="json"), **_row(dataset, fed, cen)}
        rows.append(results[dataset])
        png = plot_runs({f"federated ({c.n} clients, alpha {c.alpha:g})": fed}, out / f"{dataset}.png",
                        reference=("centralised", cen),
                        title=f"{dataset}: federated split fine-tuning vs centralised, {ch.channel} "
                              f"{ch.snr_db:g} dB, {ch.k_symbols} symbols")
        pngs.append(png)
        print(f"wrote {png}", flush=True)

    summary = Table("federated", ["dataset", "federated", "centralised", "fed / central (goal >= 0.95)",
                                  "first round >= 0.95 x central", "uplink (symbols + labels + adapters)",
                                  "full-model FedAvg uplink", "ratio (goal <= 0.05)", "downlink",
                                  "trained / device params", "dropped", "fed s", "central s"], [],
                    title="accuracy over the channel on the test items, mean of the last 3 rounds (epochs); "
                          "uplink and downlink per round in kB")
    print("\n" + summary.title)
    print(_md(summary.columns))
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        b = r["uplink_breakdown"]
        summary.rows.append([
            r["dataset"], f"{r['federated_accuracy']:.3f}", f"{r['centralised_accuracy']:.3f}",
            f"{r['accuracy_ratio']:.3f} ({'met' if r['accuracy_ratio'] >= 0.95 else 'not met'})",
            f"{r['first_round_at_goal'] or '-'}",
            f"{_kb(r['uplink_per_round'])} ({_kb(b['symbols'])} + {_kb(b['labels'])} + {_kb(b['adapters'])})",
            _kb(r["full_fedavg_uplink_per_round"]),
            f"{r['uplink_ratio']:.4f} ({'met' if r['uplink_ratio'] <= 0.05 else 'not met'})",
            _kb(r["downlink_per_round"]), f"{r['trainable_params']:,} / {r['device_params']:,}",
            f"{r['dropouts']}", f"{r['federated_seconds']:.0f}", f"{r['centralised_seconds']:.0f}"])
        print(_md(summary.rows[-1]))
    tables = [summary]

    engines = [e.strip() for e in args.flower.split(",") if e.strip() and e.strip() != "none"]
    if engines and first is not None:
        spec, fed = first
        k = min(args.flower_rounds, len(fed.rounds))
        short = spec_from({**spec.model_dump(mode="json"), "train": {**spec.train.model_dump(), "rounds": k}})
        engine_table = Table("engines", ["engine", "accuracy after each round", "uplink bytes per round",
                                         "dropped", "s"], [],
                             title=f"{spec.data.dataset}, first {k} rounds, same seeds:")
        tables.append(engine_table)
        print("\n" + engine_table.title)
        print(_md(engine_table.columns))
        print("|---|---|---|---|---|")
        ref = fed.rounds[:k]
        engine_table.rows.append(["inprocess", ", ".join(f"{r.accuracy:.3f}" for r in ref),
                                  ", ".join(str(r.uplink_bytes) for r in ref),
                                  f"{[list(r.dropped) for r in ref]}", "-"])
        print(_md(engine_table.rows[-1]))
        results["flower"] = {"rounds": k, "inprocess": [r.accuracy for r in ref]}
        for engine in engines:
            name = {"sim": "flower-sim", "grpc": "flower-grpc"}[engine]
            t0 = time.perf_counter()
            got = run_federated(short, name)
            secs = time.perf_counter() - t0
            engine_table.rows.append([name, ", ".join(f"{r.accuracy:.3f}" for r in got.rounds),
                                      ", ".join(str(r.uplink_bytes) for r in got.rounds),
                                      f"{[list(r.dropped) for r in got.rounds]}", f"{secs:.0f}"])
            print(_md(engine_table.rows[-1]), flush=True)
            diff = max(abs(a.accuracy - b.accuracy) for a, b in zip(ref, got.rounds))
            engine_table.notes.append(f"max |accuracy difference| {name} vs inprocess: {diff:.4f}")
            print(engine_table.notes[-1])
            results["flower"][name] = {"accuracy": [r.accuracy for r in got.rounds], "seconds": secs,
                                       "max_abs_difference": diff}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nwrote {out / 'results.json'}")
    write_results("bench_federated", tables, args=args, figures=pngs)


if __name__ == "__main__":
    main()
