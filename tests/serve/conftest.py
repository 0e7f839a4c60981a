"""A served multitask receiver on a loopback port, shared by the service's tests (one per test worker).

Its local KB is its own (tests ingest into it and delete from it); the global KB and the models are the
session's. Small limits (queue, batch, body) so that the refusals are cheap to reach."""

import os
from types import SimpleNamespace

import pytest

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="session")
def served(multitask, tmp_path_factory):
    from ragsc.kb import KnowledgeBase
    from ragsc.kb.items import NewItem
    from ragsc.pipelines import Pipeline
    from ragsc.serve.config import ServeConfig
    from ragsc.serve.server import Background, build_app

    tmp = tmp_path_factory.mktemp("served")
    enc = multitask.encoder
    local = KnowledgeBase.create(tmp / "local", enc, scope="local")
    notes = ["the courier leaves parcels at the back door", "our standup meeting moved to ten thirty"]
    local.add(enc.encode_texts(notes).embeddings, [NewItem("text", t) for t in notes])
    kbs = dict(multitask.retriever.kbs)
    pipe = Pipeline.from_config(multitask.spec, encoder=enc, decoders=multitask.decoders, local=local,
                                global_=kbs["global"], lm=multitask.receiver.lm, jscc=multitask.jscc)
    token = tmp / "token"
    token.write_text(TOKEN)
    os.chmod(token, 0o600)
    config = ServeConfig(token_file=token, max_batch=8, max_wait_ms=5, max_queue=8, max_items=8,
                         max_body_bytes=4 << 20, max_pixels=1_000_000)
    with Background(build_app(None, config, pipe=pipe)) as srv:
        yield SimpleNamespace(url=srv.url, pipe=pipe, local=local, token=TOKEN, app=srv)


@pytest.fixture(scope="session")
def transmitter_pipe(served):
    """The transmitting half of the served spec, sharing the session's models."""
    from ragsc.pipelines import Pipeline

    p = served.pipe
    return Pipeline.transmitter(p.spec, encoder=p.encoder, decoders=p.decoders, lm=p.receiver.lm, jscc=p.jscc)
