"""Knowledge bases: persistent local and global FAISS stores, ingestion, and hybrid retrieval.

``KnowledgeBase`` (``store.py``) is a folder with a FAISS index, SQLite metadata and a JSON
manifest, committed atomically; ``ingest`` (``ingest.py``) fills it from sources (``sources.py``);
``HybridRetriever`` (``retriever.py``) searches a local and a global KB as one.
"""

from ragsc.kb.index import choose_factory
from ragsc.kb.ingest import IngestReport, ingest
from ragsc.kb.retriever import HybridRetriever
from ragsc.kb.store import Hit, Item, KnowledgeBase, NewItem

__all__ = ["Hit", "HybridRetriever", "IngestReport", "Item", "KnowledgeBase", "NewItem", "choose_factory", "ingest"]
