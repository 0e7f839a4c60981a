"""ragsc.distill.darts.ops: op_cost's counts.

Tiny sizes throughout (see ``_util.py``): each search takes seconds.
"""

from __future__ import annotations

import pytest

from ragsc.distill.darts import (
    op_cost,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/distill/conftest.py


def test_op_cost_matches_hand_counts():
    c, s = 4, 8
    assert op_cost("conv_3x3", c, 1, s) == (c * c * 9 + 2 * c, s * s * c * c * 9)
    # two (depthwise 3x3 + pointwise 1x1 + BN) blocks
    assert op_cost("sep_conv_3x3", c, 1, s) == (2 * (c * 9 + c * c + 2 * c),
                                                 2 * (s * s * c * 9 + s * s * c * c))
    # stride 2 halves the output grid; the factorized reduce is two 1x1 convs onto c/2 channels each
    assert op_cost("conv_5x5", c, 2, s)[1] == 4 * 4 * c * c * 25
    assert op_cost("skip_connect", c, 2, s) == (c * c + 2 * c, 4 * 4 * c * c)
    assert op_cost("max_pool_3x3", c, 1, s) == (0, s * s * c * 9)
    assert op_cost("skip_connect", c, 1, s) == op_cost("none", c, 1, s) == (0, 0)
