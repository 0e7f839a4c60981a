"""The embedded default's knowledge bases (``build: default``) on a small setting: 20 train images."""

import time

import pytest

from ragsc.errors import KBError
from ragsc.kb.default import build_default_kb

N_IMAGES, LOCAL_IMAGES, LOCAL_TEXTS = 20, 5, 10


@pytest.fixture(scope="module")
def corpus():
    from ragsc.datasets.corpus import text_corpus

    return text_corpus()


@pytest.fixture(scope="module")
def train():
    from ragsc.datasets import load_easy_vqa

    return load_easy_vqa("train")[:N_IMAGES]


@pytest.fixture(scope="module")
def built(embedded, tmp_path_factory):
    root = tmp_path_factory.mktemp("default_kb")
    t0 = time.time()
    g = build_default_kb(root / "global", embedded, "global", images=N_IMAGES)
    loc = build_default_kb(root / "local", embedded, "local", images=N_IMAGES, local_images=LOCAL_IMAGES,
                           local_texts=LOCAL_TEXTS)
    return root, g, loc, t0


def test_global_holds_the_images_and_the_text_corpus(built, corpus, train, embedded):
    _, g, _, _ = built
    assert g.scope == "global" and g.dim == embedded.dim
    assert g.manifest["encoder"]["fingerprint"] == embedded.fingerprint
    assert len(g) == N_IMAGES + len(corpus)
    assert g.stats()["by_modality"] == {"image": N_IMAGES, "text": len(corpus)}
    items = list(g.items())
    images = [it for it in items if it.modality == "image"]
    assert [it.extra["image_id"] for it in images] == [x.image_id for x in train]
    assert [(it.text, it.extra["color"], it.extra["shape"]) for it in images] == [
        (x.caption, x.color, x.shape) for x in train]
    assert all(it.source_uri.startswith("easy-vqa:train/") for it in images)
    assert [it.text for it in items if it.modality == "text"] == list(corpus)


def test_local_is_recent_test_images_and_the_corpus_tail(built, corpus):
    from ragsc.datasets import load_easy_vqa

    _, _, loc, t0 = built
    assert loc.scope == "local"
    assert len(loc) == LOCAL_IMAGES + LOCAL_TEXTS
    assert loc.stats()["by_modality"] == {"image": LOCAL_IMAGES, "text": LOCAL_TEXTS}
    items = list(loc.items())
    recent = load_easy_vqa("test")[:LOCAL_IMAGES]
    images = [it for it in items if it.modality == "image"]
    assert [it.extra["image_id"] for it in images] == [x.image_id for x in recent]
    assert [it.text for it in images] == [x.caption for x in recent]
    assert all(it.source_uri.startswith("easy-vqa:test/") for it in images)
    assert [it.text for it in items if it.modality == "text"] == list(corpus[-LOCAL_TEXTS:])
    assert all(it.created_at >= t0 - 1 for it in items)  # time-stamped at build time


def test_a_second_build_adds_nothing(built, embedded):
    root, g, loc, _ = built
    before = (len(g), len(loc))
    g2 = build_default_kb(root / "global", embedded, "global", images=N_IMAGES)
    loc2 = build_default_kb(root / "local", embedded, "local", images=N_IMAGES, local_images=LOCAL_IMAGES,
                            local_texts=LOCAL_TEXTS)
    assert (len(g2), len(loc2)) == before
    assert [it.id for it in g2.items()] == [it.id for it in g.reload().items()]


def test_default_kbs_fixture_sizes(default_kbs, corpus):
    local, global_ = default_kbs
    assert len(global_) == 300 + len(corpus) and len(local) == 100 + 100


def test_unknown_scope(embedded, tmp_path):
    with pytest.raises(KBError, match="scope must be 'global' or 'local', got 'regional'"):
        build_default_kb(tmp_path / "kb", embedded, "regional", images=N_IMAGES)
    assert not (tmp_path / "kb").exists()


def test_a_kb_from_another_recipe_follows_the_current_one_and_keeps_user_items(embedded, tmp_path):
    from ragsc.kb import NewItem

    kb = build_default_kb(tmp_path / "local", embedded, "local", local_images=LOCAL_IMAGES,
                          local_texts=LOCAL_TEXTS)
    user = embedded.encode_texts(["my own note"]).embeddings
    kb.add(user, [NewItem("text", "my own note", "file:///home/me/notes.txt")])
    generation = kb.reload().manifest["generation"]

    # the recipe changed since the KB was built: two images fewer, three sentences more
    kb = build_default_kb(tmp_path / "local", embedded, "local", local_images=LOCAL_IMAGES - 2,
                          local_texts=LOCAL_TEXTS + 3)
    assert kb.manifest["generation"] != generation
    items = list(kb.items())
    assert kb.stats()["by_modality"] == {"image": LOCAL_IMAGES - 2, "text": LOCAL_TEXTS + 3 + 1}
    assert any(it.source_uri == "file:///home/me/notes.txt" for it in items)  # not a default source: kept
    kept = [it.extra["image_id"] for it in items if it.modality == "image"]
    from ragsc.datasets import load_easy_vqa

    assert sorted(kept) == sorted(x.image_id for x in load_easy_vqa("test")[: LOCAL_IMAGES - 2])
    # the stored vectors follow: every default item retrieves itself
    images = [it for it in items if it.modality == "image"]
    hits = kb.search(embedded.encode_images([_path(it) for it in images]).embeddings, 1, modality="image")
    assert [h[0].id for h in hits] == [it.id for it in images]
    # in line already: nothing is written
    again = build_default_kb(tmp_path / "local", embedded, "local", local_images=LOCAL_IMAGES - 2,
                             local_texts=LOCAL_TEXTS + 3)
    assert again.manifest["generation"] == kb.manifest["generation"]


def _path(item):
    from ragsc.decoders.context import item_image_path

    return item_image_path(item)


def test_a_kb_of_the_other_scope_is_refused_and_left_alone(built, embedded):
    root, g, _, _ = built
    before = g.reload()
    with pytest.raises(KBError, match="is a global KB, not the local one"):
        build_default_kb(root / "global", embedded, "local", local_images=LOCAL_IMAGES,
                         local_texts=LOCAL_TEXTS)
    after = g.reload()
    assert after.manifest["generation"] == before.manifest["generation"] and len(after) == len(before)


def test_sync_keeps_what_a_user_ingested_from_the_same_sources(embedded, tmp_path):
    from ragsc.datasets import load_easy_vqa
    from ragsc.kb import NewItem
    from ragsc.kb.items import content_hash

    kb = build_default_kb(tmp_path / "local", embedded, "local", local_images=LOCAL_IMAGES,
                          local_texts=LOCAL_TEXTS)
    # ingested by `ragsc kb ingest`: same URI scheme, hash of the bytes
    x = load_easy_vqa("test")[LOCAL_IMAGES + 5]
    uri = f"easy-vqa:test/{x.image_id}"
    kb.add(embedded.encode_images([x.path]).embeddings,
           [NewItem("image", x.caption, uri, content_hash=content_hash("image", x.path.read_bytes()))])
    kb = build_default_kb(tmp_path / "local", embedded, "local", local_images=LOCAL_IMAGES - 1,
                          local_texts=LOCAL_TEXTS)
    uris = [it.source_uri for it in kb.items() if it.modality == "image"]
    assert uri in uris and len(uris) == LOCAL_IMAGES - 1 + 1


def test_sentences_are_not_deleted_while_the_fortunes_are_missing(embedded, tmp_path, monkeypatch):
    import ragsc.datasets.corpus as corpus

    kb = build_default_kb(tmp_path / "global", embedded, "global", images=N_IMAGES)
    before = sorted(it.text for it in kb.items() if it.modality == "text")
    captions_only = corpus.text_corpus(fortunes=False)
    if len(captions_only) == len(before):
        pytest.skip("Debian's fortunes is not installed: there is nothing to lose")
    monkeypatch.setattr(corpus, "text_corpus", lambda fortunes=True: captions_only)
    kb = build_default_kb(tmp_path / "global", embedded, "global", images=N_IMAGES)
    assert sorted(it.text for it in kb.items() if it.modality == "text") == before


def test_build_default_refuses_a_kb_that_is_not_the_defaults(embedded, tmp_path):
    from ragsc.config import KBRef
    from ragsc.kb import KnowledgeBase, NewItem
    from ragsc.pipelines.factory import open_kb

    kb = KnowledgeBase.create(tmp_path / "mine", embedded, scope="local")
    kb.add(embedded.encode_texts(["my note"]).embeddings, [NewItem("text", "my note", "file:///notes.txt")])
    generation = kb.reload().manifest["generation"]
    with pytest.raises(KBError, match="none of the embedded default's"):
        open_kb(KBRef(path=str(tmp_path / "mine"), scope="local", build="default"), embedded)
    assert kb.reload().manifest["generation"] == generation and len(kb.reload()) == 1


@pytest.mark.parametrize("kwargs", [{"images": -1}, {"local_texts": -3}, {"local_images": 2.5}])
def test_bad_sizes_are_refused_before_anything_is_written(embedded, tmp_path, kwargs):
    from ragsc.errors import ConfigError

    with pytest.raises(ConfigError, match="integers >= 0"):
        build_default_kb(tmp_path / "kb", embedded, "local", **kwargs)
    assert not (tmp_path / "kb").exists()


def test_a_pipeline_syncs_an_existing_default_kb_on_open(embedded, tmp_path, monkeypatch):
    import ragsc.kb.default as default_kb
    from ragsc.config import KBRef
    from ragsc.pipelines.factory import open_kb

    build_default_kb(tmp_path / "local", embedded, "local", local_images=LOCAL_IMAGES,
                     local_texts=LOCAL_TEXTS)
    calls = []
    monkeypatch.setattr(default_kb, "build_default_kb", lambda *a, **k: calls.append((a, k)) or "synced")
    assert open_kb(KBRef(path=str(tmp_path / "local"), scope="local", build="default"), embedded) == "synced"
    assert calls and calls[0][0][2] == "local"


# ---------------------------------------------------------------------------------------- recipes (kb/*.yaml)
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def test_the_recipes_describe_what_is_built():
    from ragsc.kb.default import LOCAL_TEST_IMAGES, load_recipe, load_recipes

    assert sorted(load_recipes()) == ["global", "local"]
    g, loc = load_recipe("global"), load_recipe("local")
    assert (g.name, g.scope, g.index) == ("easy-vqa-global", "global", None)
    assert (g.images.source, g.images.split, g.images.first) == ("easy-vqa", "train", None)
    assert (g.texts.source, g.texts.last) == ("corpus", None)
    assert (loc.name, loc.scope, loc.index) == ("easy-vqa-local", "local", None)
    assert (loc.images.source, loc.images.split, loc.images.first) == ("easy-vqa", "test", 200)
    assert (loc.texts.source, loc.texts.last) == ("corpus", 200)
    assert LOCAL_TEST_IMAGES == 200


def test_the_specs_default_kbs_are_the_recipes():
    import yaml

    from ragsc.kb.default import load_recipe

    specs = [yaml.safe_load(spec.read_text()) for spec in sorted((ROOT / "pipelines").glob("*.yaml"))]
    refs = [ref for spec in specs for ref in spec.get("knowledge_bases", []) if ref.get("build") == "default"]
    assert refs and all(ref["path"] == load_recipe(ref["scope"]).name for ref in refs)


def test_the_wheel_carries_the_recipes():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]["kb"] == "ragsc/_assets/kb"
    from ragsc._assets import asset_dir

    assert {p.name for p in asset_dir("kb").glob("*.yaml")} == {"easy_vqa_global.yaml", "easy_vqa_local.yaml"}


@pytest.fixture
def recipe_dir(tmp_path, monkeypatch):
    """A copy of the kb/ recipes that ``build_default_kb`` reads instead of the shipped ones."""
    import shutil

    import ragsc._assets

    folder = tmp_path / "recipes"
    shutil.copytree(ROOT / "kb", folder)
    real = ragsc._assets.asset_dir
    monkeypatch.setattr(ragsc._assets, "asset_dir", lambda kind: folder if kind == "kb" else real(kind))
    return folder


def test_the_builder_reads_the_recipe(embedded, tmp_path, recipe_dir):
    from ragsc.datasets import load_easy_vqa

    f = recipe_dir / "easy_vqa_local.yaml"
    f.write_text(f.read_text().replace("first: 200", "first: 3").replace("last: 200", "last: 2"))
    kb = build_default_kb(tmp_path / "local", embedded, "local")
    from ragsc.kb.default import LOCAL_TEST_IMAGES  # read from the recipe when asked for
    assert kb.stats()["by_modality"] == {"image": 3, "text": 2} and LOCAL_TEST_IMAGES == 3
    images = [it.extra["image_id"] for it in kb.items() if it.modality == "image"]
    assert images == [x.image_id for x in load_easy_vqa("test")[:3]]


@pytest.mark.parametrize("edit, named", [
    (("first: 200", "first: -1"), "images.first: Input should be greater than or equal to 0"),
    (("first: 200", "first: '200'"), "images.first: Input should be a valid integer"),
    (("last: 200", "last: 2.5"), "texts.last: Input should be a valid integer"),
    (("split: test", "split: validation"), "images.split: Input should be 'train' or 'test'"),
    (("\nscope: local", "\nscope: regional"), "scope: Input should be 'local' or 'global'"),
    (("  source: corpus", "  source: web"), "texts.source: Input should be 'corpus'"),
    (("index: null", "index: null\nimages_limit: 3"), "images_limit: Extra inputs are not permitted"),
    (("name: easy-vqa-local", "name: ../elsewhere"), "name: String should match pattern"),
])
def test_a_bad_recipe_is_a_config_error_naming_the_field(embedded, tmp_path, recipe_dir, edit, named):
    from ragsc.errors import ConfigError

    f = recipe_dir / "easy_vqa_local.yaml"
    assert edit[0] in f.read_text()
    f.write_text(f.read_text().replace(edit[0], edit[1], 1))
    with pytest.raises(ConfigError) as e:
        build_default_kb(tmp_path / "kb", embedded, "local")
    assert "easy_vqa_local.yaml" in str(e.value) and named in str(e.value)
    assert not (tmp_path / "kb").exists()


def test_two_recipes_of_one_scope_or_none_are_refused(embedded, tmp_path, recipe_dir):
    from ragsc.errors import ConfigError

    (recipe_dir / "copy.yaml").write_text((recipe_dir / "easy_vqa_local.yaml").read_text())
    with pytest.raises(ConfigError, match="two KB recipes of scope 'local'"):
        build_default_kb(tmp_path / "kb", embedded, "local")
    (recipe_dir / "copy.yaml").unlink()
    (recipe_dir / "easy_vqa_global.yaml").unlink()
    with pytest.raises(ConfigError, match="no KB recipe of scope 'global'"):
        build_default_kb(tmp_path / "kb", embedded, "global")
    assert not (tmp_path / "kb").exists()


def test_the_global_kb_holds_the_captioned_photos_when_gcompris_is_installed(embedded, tmp_path, monkeypatch,
                                                                             caplog):
    """Synthetic GCompris bundles: their photos join the global KB with caption, title and category;
    while the package is missing they are skipped with a warning, and a built KB keeps them."""
    from tests.datasets.gcompris_fixture import make_gcompris

    monkeypatch.setenv("RAGSC_GCOMPRIS_DIR", str(make_gcompris(tmp_path / "rcc")))
    kb = build_default_kb(tmp_path / "global", embedded, "global", images=N_IMAGES)
    photos = [it for it in kb.items() if (it.source_uri or "").startswith("gcompris:")]
    assert len(photos) == 7 and all(it.modality == "image" for it in photos)
    colosseum = next(it for it in photos if it.extra["title"] == "Colosseum")
    assert colosseum.text == "Colosseum. The Colosseum is in Rome."
    assert colosseum.extra["category"] == "monument"
    assert _path(colosseum).is_file()  # the pixels, for recognition and side information
    hits = kb.search(embedded.encode_images([_path(colosseum)]).embeddings, 1, modality="image")
    assert hits[0][0].id == colosseum.id

    monkeypatch.setenv("RAGSC_GCOMPRIS_DIR", str(tmp_path / "nowhere"))
    with caplog.at_level("WARNING", logger="ragsc.kb"):
        again = build_default_kb(tmp_path / "global", embedded, "global", images=N_IMAGES)
    assert "gcompris-qt-data" in caplog.text
    assert again.manifest["generation"] == kb.manifest["generation"]  # nothing deleted, nothing written
    fresh = build_default_kb(tmp_path / "fresh", embedded, "global", images=N_IMAGES)
    assert not any((it.source_uri or "").startswith("gcompris:") for it in fresh.items())

    # a photo the package no longer ships leaves the KB; the others stay
    from tests.datasets.gcompris_fixture import ROOT, webp
    from tests.datasets.rcc_writer import write_rcc

    folder = make_gcompris(tmp_path / "rcc2")
    write_rcc(folder / "erase.rcc", {ROOT.format(b="erase") + "kitten.webp": webp((9, 9, 9))})
    monkeypatch.setenv("RAGSC_GCOMPRIS_DIR", str(folder))
    kb = build_default_kb(tmp_path / "global", embedded, "global", images=N_IMAGES)
    uris = {it.source_uri for it in kb.items() if (it.source_uri or "").startswith("gcompris:")}
    assert "gcompris:erase/kitten.webp" in uris and "gcompris:erase/red_panda.webp" not in uris
    assert len(uris) == 7
