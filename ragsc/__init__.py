"""ragsc: retrieval-augmented multimodal semantic communication.

The public API is re-exported here; see README.md for the flow
(encoders -> channel -> kb / decoders -> pipelines -> eval).
"""

from ragsc.encoders import MultimodalEncoder, load_encoder
from ragsc.errors import ConfigError, InputError, KBError, MissingDependencyError, ModelLoadError, RagscError
from ragsc.kb import HybridRetriever, KnowledgeBase
from ragsc.types import SemanticTokens

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "HybridRetriever",
    "InputError",
    "KBError",
    "KnowledgeBase",
    "MissingDependencyError",
    "ModelLoadError",
    "MultimodalEncoder",
    "RagscError",
    "SemanticTokens",
    "load_encoder",
]
