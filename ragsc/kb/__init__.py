"""Knowledge bases: persistent local and global FAISS stores, ingestion, and hybrid retrieval.

``KnowledgeBase`` (``store.py``, the reader) is a folder with a FAISS index, SQLite metadata and a
JSON manifest (``manifest.py``), committed atomically by a ``Writer`` (``writer.py``); ``items.py``
holds what is stored per item. ``ingest`` (``ingest.py``) fills a KB from sources (``sources.py``);
``HybridRetriever`` (``retriever.py``) searches a local and a global KB as one; ``default.py`` builds
the embedded default's KBs from the recipes in the top-level ``kb/`` folder.
"""

from ragsc.kb.index import choose_factory
from ragsc.kb.ingestion import IngestReport, ingest
from ragsc.kb.items import Hit, Item, NewItem
from ragsc.kb.retriever import HybridRetriever
from ragsc.kb.store import KnowledgeBase

__all__ = ["Hit", "HybridRetriever", "IngestReport", "Item", "KnowledgeBase", "NewItem", "choose_factory",
           "ingest"]
