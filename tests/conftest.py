"""Shared test set-up: never reach a model hub, keep artefacts in a temporary RAGSC_HOME, and keep the
run's speed when it shares the CPU cores with other work (:data:`THREADS_ENV`)."""

import os
from typing import NamedTuple

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# OpenMP threads (torch's and FAISS's) that wait for work sleep instead of spinning: on cores another job
# uses, spinning threads burn what the busy core has left (the distillation notebook ran 12 minutes instead
# of 77 s beside one busy process). Set before torch and FAISS are imported, whose OpenMP reads it when
# loaded; the notebooks' kernels get it too (tests/notebooks). A value set outside wins. The thread count is
# left to torch (both cores when idle: one thread per process made the idle suite 26 minutes instead of ~10).
THREADS_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
# `make test` runs the suite on two pytest-xdist workers: one thread each fills the two cores without the
# threads of one worker waiting on those of the other
if os.environ.get("PYTEST_XDIST_WORKER"):
    THREADS_ENV["OMP_NUM_THREADS"] = "1"
for _key, _value in THREADS_ENV.items():
    os.environ.setdefault(_key, _value)
THREADS_ENV = {key: os.environ[key] for key in THREADS_ENV}

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _ragsc_home(tmp_path_factory):
    os.environ["RAGSC_HOME"] = str(tmp_path_factory.mktemp("ragsc_home"))
    # the default global KB adds GCompris's photos when the package is installed: tests build it the same
    # way on every machine, without them (tests of the photo corpus point at their own bundles)
    os.environ.setdefault("RAGSC_GCOMPRIS_DIR", str(tmp_path_factory.mktemp("no_gcompris")))


@pytest.fixture(scope="session")
def embedded():
    """The embedded default encoder, loaded once per session (about 5 s)."""
    from ragsc import load_encoder

    return load_encoder("embedded")


@pytest.fixture
def no_network(monkeypatch):
    """Record and refuse every attempt to open a network connection; the test fails if there was one.

    Recorded rather than only raised: loaders turn exceptions into ModelLoadError, which would hide a
    refused download from a ``pytest.raises(ModelLoadError)``.
    """
    import socket

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError(f"network access attempted in a test: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield
    assert not attempts, f"network access attempted: {attempts!r}"


@pytest.fixture(scope="session")
def default_kbs(embedded, tmp_path_factory):
    """(local, global) default KBs on a small setting: 300 train images + the text corpus (about 20 s)."""
    from ragsc.pipelines import build_default_kb

    root = tmp_path_factory.mktemp("default_kbs")
    global_ = build_default_kb(root / "global", embedded, "global", images=300)
    local = build_default_kb(root / "local", embedded, "local", images=300, local_images=100, local_texts=100)
    return local, global_


@pytest.fixture(scope="session")
def decoders():
    """The shipped trained decoders."""
    from ragsc.decoders import load_decoders

    return load_decoders()


@pytest.fixture(scope="session")
def multitask(embedded, default_kbs, decoders):
    """The multitask pipeline of pipelines/multitask.yaml over the small default KBs."""
    from ragsc._assets import asset_dir
    from ragsc.pipelines import Pipeline

    local, global_ = default_kbs
    return Pipeline.from_config(asset_dir("pipelines") / "multitask.yaml", encoder=embedded, local=local,
                                global_=global_, decoders=decoders)


@pytest.fixture
def fake_encoder():
    """A fast, deterministic encoder (tests/kb/_fakes.py)."""
    from tests.kb._fakes import FakeEncoder

    return FakeEncoder()


@pytest.fixture
def new_kb(tmp_path):
    """``new_kb(name="kb", encoder=FAKE, **create_kwargs)`` -> a fresh KnowledgeBase under tmp_path
    (default encoder: the fake's spec, fingerprint and dimension 8)."""
    from ragsc.kb import KnowledgeBase
    from tests.kb._fakes import FAKE

    def make(name: str = "kb", encoder=None, **kw) -> KnowledgeBase:
        return KnowledgeBase.create(tmp_path / name, encoder if encoder is not None else dict(FAKE), **kw)

    return make


class CliResult(NamedTuple):
    """What ``ragsc ARGS`` did: its exit status and what it printed."""

    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """``cli(*args) -> CliResult(code, out, err)``: ``ragsc ARGS`` run in this process through the console
    entry (``ragsc.cli.main``), much faster than a fresh interpreter per call. Arguments may be paths."""
    from ragsc.cli import main

    def run(*args) -> CliResult:
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def start_local_ray(attempts: int = 3, **kwargs) -> None:
    """``ray.init`` on this machine, tried again when its GCS server is slow to start: on two cores shared
    with the rest of the suite it once missed Ray's fixed 30 s wait for its port file (CI, 2026-12-07),
    which says nothing about the code under test. Each failure is shut down before the next try; the last
    one raises."""
    import ray

    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False, **kwargs}
    for attempt in range(attempts):
        try:
            ray.init(**kwargs)
            return
        except RuntimeError as exc:
            ray.shutdown()
            if attempt == attempts - 1 or "Timed out" not in str(exc):
                raise


# ----------------------------------------------------------------------- the service (tests/serve, tests/cli)
SERVE_TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="session")
def served(multitask, tmp_path_factory):
    """A served multitask receiver on a loopback port (one per test worker). Its local KB is its own (tests
    ingest into it and delete from it); the global KB and the models are the session's. Small limits (queue,
    batch, body) so that the refusals are cheap to reach."""
    from types import SimpleNamespace

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
    token.write_text(SERVE_TOKEN)
    os.chmod(token, 0o600)
    config = ServeConfig(token_file=token, max_batch=8, max_wait_ms=5, max_queue=8, max_items=8,
                         max_body_bytes=4 << 20, max_pixels=1_000_000, baseline_pixels=100_000)
    with Background(build_app(None, config, pipe=pipe)) as srv:
        yield SimpleNamespace(url=srv.url, pipe=pipe, local=local, token=SERVE_TOKEN, app=srv)


@pytest.fixture(scope="session")
def transmitter_pipe(served):
    """The transmitting half of the served spec, sharing the session's models."""
    from ragsc.pipelines import Pipeline

    p = served.pipe
    return Pipeline.transmitter(p.spec, encoder=p.encoder, decoders=p.decoders, lm=p.receiver.lm, jscc=p.jscc)
