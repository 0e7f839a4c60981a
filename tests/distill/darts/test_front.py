"""ragsc.distill.darts.front: the lambda front and its plot.

Tiny sizes throughout (see ``_util.py``): each search takes seconds.
"""

from __future__ import annotations

import json

import pytest

from ragsc.distill.darts import (
    ArchitectureConfig,
    DerivedNetwork,
    LambdaPoint,
    SearchSpaceConfig,
    architecture_cost,
    kd_score,
    lambda_front,
    plot_front,
)
from ragsc.errors import InputError

from ._util import TINY, splits

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/distill/conftest.py


def test_lambda_front_and_its_plot(data, tmp_path):
    cfg = SearchSpaceConfig(**TINY)
    points = lambda_front(*splits(data), [0.0, 10.0], cfg, epochs=1, retrain_epochs=1, batch_size=16,
                          checkpoint=tmp_path / "ck")
    assert [p.lam for p in points] == [0.0, 10.0]
    for p in points:
        assert isinstance(p, LambdaPoint) and isinstance(p.params, int) and p.params > 0
        assert -1.0 <= p.score <= 1.0
        assert p.params == DerivedNetwork(ArchitectureConfig.from_search(cfg, p.genotype)).num_parameters()
        assert (p.params, p.macs) == architecture_cost(p.network.config) and p.seconds > 0
        assert p.score == pytest.approx(kd_score(p.network, *splits(data)[2:]))  # the retrained net itself
        manifest = json.loads((tmp_path / "ck" / f"lam-{p.lam!r}" / "search.json").read_text())
        assert manifest["complete"] and manifest["settings"]["lam"] == p.lam  # one checkpoint per lambda
    png = plot_front(points, tmp_path / "plots" / "front.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError, match="at least one"):
        plot_front([], tmp_path / "empty.png")
