"""LangChain integration (extra ``langchain``, depends on ``langchain-core`` only).

* :class:`RagscEmbeddings` — a ragsc encoder as LangChain ``Embeddings`` (texts).
* :class:`RagscVectorStore` — a ragsc :class:`~ragsc.kb.KnowledgeBase` as a LangChain ``VectorStore``.
* :class:`RagscRetriever` — a KB or a :class:`~ragsc.kb.HybridRetriever` as a ``BaseRetriever``.

Documents carry the item's text as ``page_content``; their ``metadata`` holds the reserved keys
``id``, ``score``, ``provenance``, ``modality``, ``source_uri``, ``created_at`` (always the item's own,
so ``store.delete([doc.metadata["id"]])`` deletes that item) and ``extra`` (the item's stored fields,
all of them, under their own names). A stored field whose name is not reserved is also copied to
the top level (``metadata["lang"]``); one that is (a JSONL record's own ``id`` or ``score``) is only
found under ``metadata["extra"]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ragsc._deps import require_package

require_package("langchain_core", "langchain")

from langchain_core.callbacks import CallbackManagerForRetrieverRun  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from langchain_core.vectorstores import VectorStore  # noqa: E402
from pydantic import ConfigDict, model_validator  # noqa: E402

from ragsc.errors import ConfigError  # noqa: E402
from ragsc.kb.items import Hit, NewItem  # noqa: E402
from ragsc.kb.retriever import HybridRetriever  # noqa: E402
from ragsc.kb.store import KnowledgeBase  # noqa: E402

RESERVED = ("id", "score", "provenance", "modality", "source_uri", "created_at", "extra")


def _document(hit: Hit) -> Document:
    """A LangChain document for a hit: reserved metadata keys win over stored fields (module docstring)."""
    it = hit.item
    metadata = {k: v for k, v in it.extra.items() if k not in RESERVED}
    metadata.update(id=it.id, score=hit.score, provenance=hit.provenance, modality=it.modality,
                    source_uri=it.source_uri, created_at=it.created_at, extra=dict(it.extra))
    return Document(page_content=it.text or "", metadata=metadata)


class RagscEmbeddings(Embeddings):
    """Text embeddings from a ragsc encoder (L2-normalised, in the encoder's shared space)."""

    def __init__(self, encoder) -> None:
        self.encoder = encoder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encoder.encode_texts(list(texts)).embeddings.tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encoder.encode_texts([text]).embeddings[0].tolist()


class RagscVectorStore(VectorStore):
    """A ragsc knowledge base behind LangChain's ``VectorStore`` interface."""

    def __init__(self, kb: KnowledgeBase, encoder) -> None:
        self.kb = KnowledgeBase.open(kb.path, encoder=encoder)  # refuses a KB built by another encoder
        self.encoder = encoder

    @property
    def embeddings(self) -> Embeddings:
        return RagscEmbeddings(self.encoder)

    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None,
                  **kwargs: Any) -> list[str]:
        texts = list(texts)
        metadatas = metadatas or [{} for _ in texts]
        emb = self.encoder.encode_texts(texts)
        items = [NewItem("text", t, m.get("source"), extra=m) for t, m in zip(texts, metadatas)]
        ids = self.kb.add(emb, items)
        return [str(i) for i in ids if i is not None]  # duplicates of stored texts get no new id

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        if not ids:
            return None
        return self.kb.delete([int(i) for i in ids]) == len(ids)

    def similarity_search_with_score(self, query: str, k: int = 4,
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        hits = self.kb.search(self.encoder.encode_texts([query]), k, modality=kwargs.get("modality"))[0]
        return [(_document(h), h.score) for h in hits]

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4,
                                    **kwargs: Any) -> list[Document]:
        return [_document(h) for h in self.kb.search([embedding], k, modality=kwargs.get("modality"))[0]]

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Any, metadatas: list[dict] | None = None, *,
                   path: str | None = None, scope: str = "local", **kwargs: Any) -> RagscVectorStore:
        """A new KB at ``path`` for ``embedding`` (:class:`RagscEmbeddings` or an encoder), with ``texts``."""
        if path is None:
            raise TypeError("RagscVectorStore.from_texts needs path=... (where the knowledge base folder "
                            "goes)")
        encoder = embedding.encoder if isinstance(embedding, RagscEmbeddings) else embedding
        store = cls(KnowledgeBase.create(path, encoder, scope=scope), encoder)
        store.add_texts(texts, metadatas)
        return store


class RagscRetriever(BaseRetriever):
    """A KB or a hybrid local+global retriever as a LangChain retriever (text queries)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Any  # KnowledgeBase | HybridRetriever
    encoder: Any = None  # needed for a bare KnowledgeBase
    k: int = 4

    @model_validator(mode="after")
    def _needs_encoder(self) -> RagscRetriever:
        if not isinstance(self.retriever, HybridRetriever) and self.encoder is None:
            raise ConfigError("RagscRetriever over a bare KnowledgeBase needs encoder=... to embed text "
                              "queries")
        return self

    def _get_relevant_documents(self, query: str, *,
                                run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        if isinstance(self.retriever, HybridRetriever):
            hits = self.retriever.search(query, self.k)[0]
        else:
            hits = self.retriever.search(self.encoder.encode_texts([query]), self.k)[0]
        return [_document(h) for h in hits]
