"""Shared parts of the pipeline tests: one encoder, the small default KBs and the shipped decoders."""

import pytest


@pytest.fixture(scope="module")
def parts(embedded, default_kbs, decoders):
    local, global_ = default_kbs
    return {"encoder": embedded, "local": local, "global_": global_, "decoders": decoders}
