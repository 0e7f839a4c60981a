"""The server's settings (``ragsc serve`` options), one pydantic model.

Defaults are the safe ones: loopback only, writes off unless a token file is given, CORS off, bodies and
photos bounded. Batching: ``max_batch`` items gathered for at most ``max_wait_ms``; ``max_queue`` items may
wait before requests are refused with 429; a request not started within ``deadline_s`` fails with 504.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from ragsc.config_base import Config


class ServeConfig(Config):
    """``ragsc serve``'s settings (see the module docstring)."""

    host: str = Field("127.0.0.1", description="address to listen on; anything but loopback is warned about")
    port: int = Field(8000, ge=0, le=65535, description="0: any free port")
    max_batch: int = Field(32, ge=1, le=4096, description="items per decoding batch")
    max_wait_ms: float = Field(2.0, ge=0, le=10_000, description="how long a request waits for company "
                               "when the worker is idle (under load, batches form while the last one runs)")
    max_fill_ms: float = Field(250.0, ge=0, le=10_000, description="under load, how long after a batch the "
                               "next one waits to fill (at most 5 % of the last batch's time)")
    max_queue: int = Field(256, ge=1, le=1_000_000, description="items waiting before requests get 429")
    deadline_s: float = Field(120.0, gt=0, le=3600, description="a request not started by then gets 504")
    max_body_bytes: int = Field(32 << 20, ge=1024, le=1 << 31, description="request body size")
    max_items: int = Field(64, ge=1, le=4096, description="items per request")
    max_pixels: int = Field(16_000_000, ge=1, le=178_956_970, description="pixels per photo in a request")
    baseline_pixels: int = Field(1_000_000, ge=1, le=178_956_970, description="pixels per photo that /v1/run "
                                 "also sends over the digital baseline (LDPC simulated bit by bit)")
    token_file: Path | None = Field(None, description="bearer token for writes (and reads with "
                                    "protect_reads); the file must be readable by its owner only")
    protect_reads: bool = Field(False, description="reads need the token too (healthz / readyz never do)")
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed by CORS; none: "
                                    "CORS off")
    engine: Literal["uvicorn", "ray"] = "uvicorn"
    replicas: int = Field(1, ge=1, le=64, description="Ray Serve replicas (engine: ray)")
