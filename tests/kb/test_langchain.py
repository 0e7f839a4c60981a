"""The LangChain adapters against langchain-core's own interfaces (extra: langchain)."""

import pytest

pytest.importorskip("langchain_core")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from langchain_core.vectorstores import VectorStore  # noqa: E402

from ragsc.kb import HybridRetriever, KnowledgeBase  # noqa: E402
from ragsc.kb.langchain import RagscEmbeddings, RagscRetriever, RagscVectorStore  # noqa: E402

TEXTS = ["a red circle", "a cup of coffee", "a rocket on a launch pad", "a cat sleeping on a sofa"]


def test_vector_store_round_trip(embedded, tmp_path):
    store = RagscVectorStore.from_texts(TEXTS, RagscEmbeddings(embedded), [{"n": i} for i in range(4)],
                                        path=str(tmp_path / "kb"))
    assert isinstance(store, VectorStore) and len(store.kb) == 4
    docs = store.similarity_search("a kitten", k=2)
    assert isinstance(docs[0], Document) and docs[0].page_content == "a cat sleeping on a sofa"
    assert docs[0].metadata["n"] == 3 and docs[0].metadata["provenance"] == "local"
    scored = store.similarity_search_with_score("coffee", k=1)
    assert scored[0][0].page_content == "a cup of coffee" and 0 < scored[0][1] <= 1.0001
    by_vec = store.similarity_search_by_vector(store.embeddings.embed_query("a rocket"), k=1)
    assert by_vec[0].page_content == "a rocket on a launch pad"
    new = store.add_texts(["a blue triangle"])
    assert len(new) == 1
    assert store.similarity_search("blue triangle", k=1)[0].page_content == "a blue triangle"
    assert store.delete(new) and len(store.kb) == 4
    # langchain-core's generic API on top of ours
    assert store.as_retriever(search_kwargs={"k": 1}).invoke("espresso")[0].page_content == "a cup of coffee"


def test_retriever_over_hybrid(embedded, tmp_path):
    local = KnowledgeBase.create(tmp_path / "local", embedded, scope="local")
    glob = KnowledgeBase.create(tmp_path / "global", embedded, scope="global")
    from ragsc.kb.items import NewItem

    local.add(embedded.encode_texts(TEXTS[:2]), [NewItem("text", t) for t in TEXTS[:2]])
    glob.add(embedded.encode_texts(TEXTS[1:]), [NewItem("text", t) for t in TEXTS[1:]])
    r = RagscRetriever(retriever=HybridRetriever(local.reload(), glob.reload(), encoder=embedded), k=3)
    assert isinstance(r, BaseRetriever)
    docs = r.invoke("coffee")
    assert docs[0].page_content == "a cup of coffee" and docs[0].metadata["provenance"] == "local+global"
    plain = RagscRetriever(retriever=glob.reload(), encoder=embedded, k=1).invoke("a spaceship launch")
    assert plain[0].page_content == "a rocket on a launch pad"


def test_an_ingested_id_or_score_field_never_overrides_the_reserved_keys(new_kb, tmp_path):
    from ragsc.kb import ingest

    from ._fakes import FakeEncoder

    enc = FakeEncoder()
    src = tmp_path / "docs.jsonl"
    src.write_text('{"text": "a cup of coffee", "id": 999, "score": 5, "provenance": "mine", "lang": "en"}\n'
                   '{"text": "a rocket on a launch pad", "id": 1, "extra": "x"}\n')
    kb = new_kb(encoder=enc)
    ingest(kb, str(src), encoder=enc, progress=False)
    store = RagscVectorStore(kb, enc)
    [(doc, score)] = store.similarity_search_with_score("a cup of coffee", k=1)
    stored = next(it for it in store.kb.items() if it.text == "a cup of coffee")
    assert doc.metadata["id"] == stored.id != 999
    assert doc.metadata["score"] == score == pytest.approx(1.0, abs=1e-5)
    assert doc.metadata["provenance"] == "local" and doc.metadata["source_uri"] == f"{src}:1"
    assert doc.metadata["lang"] == "en"  # a field that collides with nothing keeps its place at the top
    # all of them, under their own names
    assert doc.metadata["extra"] == {"id": 999, "score": 5, "provenance": "mine", "lang": "en"}
    [rocket] = store.similarity_search("a rocket on a launch pad", k=1)
    assert rocket.metadata["extra"] == {"id": 1, "extra": "x"} and rocket.metadata["id"] != 1
    assert store.delete([doc.metadata["id"]])  # deletes the coffee, not whatever item has id 999 or 1
    assert [it.text for it in store.kb.items()] == ["a rocket on a launch pad"]


def test_add_texts_with_metadata_json_cannot_hold_is_an_input_error(new_kb, fake_encoder):
    import datetime

    from ragsc.errors import InputError

    kb = new_kb(encoder=fake_encoder)
    store = RagscVectorStore(kb, fake_encoder)
    store.add_texts(["kept"])
    gen = kb.reload().manifest["generation"]
    with pytest.raises(InputError, match=r"extra field 'when' .*datetime"):
        store.add_texts(["a", "b"], [{"n": 1}, {"when": datetime.datetime(2024, 5, 1)}])
    after = KnowledgeBase.open(kb.path)
    assert after.manifest["generation"] == gen and [it.text for it in after.items()] == ["kept"]
