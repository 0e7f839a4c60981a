"""ragsc: retrieval-augmented multimodal semantic communication.

The public API is re-exported here; see README.md for the flow
(encoders -> channel -> kb / decoders -> pipelines -> eval -> serve).
"""

from ragsc.encoders import MultimodalEncoder, load_encoder
from ragsc.errors import ConfigError, InputError, KBError, MissingDependencyError, ModelLoadError, RagscError
from ragsc.kb import HybridRetriever, KnowledgeBase
from ragsc.types import SemanticTokens

__version__ = "0.1.0"


def __getattr__(name: str):
    # Pipeline pulls in the channel (Sionna) and the decoders: imported on first use, not by `import ragsc`
    if name in ("Pipeline", "Transmission", "Output"):
        from ragsc import pipelines

        return getattr(pipelines, name)
    if name in ("JSCCCodec", "JSCCLink"):  # the image JSCC (torch, Sionna): on first use too
        from ragsc.channel import jscc

        return getattr(jscc, name)
    if name in ("PhotoDescriber", "DescriberSettings"):  # open captions and answers for photos
        from ragsc.decoders import photo_text

        return getattr(photo_text, name)
    if name == "Emission":  # what a transmitter's antenna sends a served receiver
        from ragsc.pipelines import transmission

        return transmission.Emission
    if name in ("Transmitter", "ServeConfig"):  # the service's client and settings (extra: serve)
        from ragsc import client
        from ragsc.serve import config

        return getattr(client, name, None) or getattr(config, name)
    raise AttributeError(f"module 'ragsc' has no attribute {name!r}")

__all__ = [
    "ConfigError",
    "DescriberSettings",
    "Emission",
    "HybridRetriever",
    "InputError",
    "JSCCCodec",
    "JSCCLink",
    "KBError",
    "KnowledgeBase",
    "MissingDependencyError",
    "ModelLoadError",
    "MultimodalEncoder",
    "Output",
    "PhotoDescriber",
    "Pipeline",
    "RagscError",
    "SemanticTokens",
    "ServeConfig",
    "Transmission",
    "Transmitter",
    "load_encoder",
]
