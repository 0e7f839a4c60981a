"""A small multitask sweep, run once and shared by the sweep tests (tests/eval/test_sweep.py)."""

import pytest


@pytest.fixture(scope="session")
def sweep_snrs():
    return [0, 20]


@pytest.fixture(scope="session")
def sweep_pipe(multitask):
    """pipelines/multitask.yaml with the easy-VQA decoders (retrieved captions, the answer head): the sweep's
    machinery over easy-VQA sets, without SmolLM2 scoring every answer (the open decoders have their own
    tests in tests/decoders/test_photo_text.py and tests/pipelines/test_image_jscc.py)."""
    from ragsc.pipelines import Pipeline

    spec = multitask.spec.model_dump()
    spec["decoder"] = {**spec["decoder"], "caption": "retrieved", "vqa": "head"}
    kbs = dict(multitask.retriever.kbs)
    return Pipeline.from_config(spec, encoder=multitask.encoder, decoders=multitask.decoders,
                                local=kbs["local"], global_=kbs["global"], lm=multitask.receiver.lm,
                                jscc=multitask.jscc)


@pytest.fixture(scope="session")
def sweep_rows(sweep_pipe, sweep_snrs):
    """Every method over AWGN at ``sweep_snrs``, 4 items per kind."""
    from ragsc.eval.sweep import SWEEP_METHODS, run_eval

    return run_eval(sweep_pipe, ["awgn"], sweep_snrs, n=4, seed=0, methods=SWEEP_METHODS, progress=False)
