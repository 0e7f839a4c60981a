"""The transmitter of a served receiver: ``Transmitter(url).send(items, snr_db=..., channel=...)``.

The device side runs here: the pipeline's encoder and paths (:meth:`~ragsc.pipelines.Pipeline.transmitter`,
no knowledge base), then the simulated channel; what the receiver's antenna got -- received symbols and
channel state, no content -- is posted to ``POST /v1/receive`` as a binary frame (:mod:`ragsc.serve.frame`).
By default the spec is the server's own (``GET /v1/spec``), so both halves match; at the same seed the
outputs are those of the in-process pipeline's ``run``.
"""

from __future__ import annotations

import base64
import io

from PIL import Image

from ragsc.errors import ConfigError, InputError, RagscError


class ServiceError(RagscError):
    """The receiver answered with an error (``status``, and its JSON ``error`` and ``detail``)."""

    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(f"the receiver answered {status} {kind}: {detail}")
        self.status, self.kind, self.detail = status, kind, detail


class Transmitter:
    """A device talking to ``ragsc serve`` at ``url``.

    Parameters
    ----------
    url
        The server (``http://127.0.0.1:8000``).
    spec
        The pipeline spec to transmit with (default: the server's, from ``GET /v1/spec``).
    token
        Bearer token, for a server started with ``--protect-reads``.
    timeout_s
        Per-request timeout.
    pipeline
        An already-built transmitting pipeline (tests and notebooks share one).
    """

    def __init__(self, url: str, *, spec=None, token: str | None = None, timeout_s: float = 600.0,
                 pipeline=None) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=timeout_s, headers=headers)
        if pipeline is None:
            from ragsc.pipelines import Pipeline

            pipeline = Pipeline.transmitter(spec if spec is not None else self.spec()["spec"])
        self.pipe = pipeline

    def spec(self) -> dict:
        """The server's ``/v1/spec``."""
        return self._json(self.http.get("/v1/spec"))

    def emit(self, items, *, snr_db: float | None = None, channel: str | None = None,
             seed: int | None = None):
        """Encode and send ``items`` through the simulated channel: the
        :class:`~ragsc.pipelines.transmission.Emission`."""
        return self.pipe.emit(items, snr_db=snr_db, channel=channel, seed=seed)

    def frame(self, items, **kwargs) -> bytes:
        """The frame :meth:`send` posts (kwargs as :meth:`emit`)."""
        from ragsc.serve import frame

        return frame.encode(self.emit(items, **kwargs), self.pipe.spec.name, self.pipe.encoder.fingerprint)

    def send(self, items, *, snr_db: float | None = None, channel: str | None = None, seed: int | None = None,
             rag: bool | None = None) -> dict:
        """Transmit ``items`` to the receiver; its answer: ``outputs`` (one dict per item: ``text``,
        ``caption``, ``answers``, ``image`` as base64 PNG, ``context``, ``meta``), ``channel_uses``,
        ``timings``."""
        from ragsc.serve.frame import MEDIA_TYPE

        body = self.frame(items, snr_db=snr_db, channel=channel, seed=seed)
        params = {} if rag is None else {"rag": str(bool(rag)).lower()}
        return self._json(self.http.post("/v1/receive", content=body, params=params,
                                         headers={"Content-Type": MEDIA_TYPE}))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Transmitter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def _json(response) -> dict:
        try:
            data = response.json()
        except ValueError:
            raise ServiceError(response.status_code, "NotJSON", response.text[:200]) from None
        if response.status_code >= 400:
            raise ServiceError(response.status_code, data.get("error", "?"), data.get("detail", ""))
        return data


def image(data: str | None) -> Image.Image | None:
    """An output's ``image`` (base64 PNG) as a PIL image."""
    if data is None:
        return None
    if not isinstance(data, str):
        raise InputError(f"expected a base64 PNG, got {type(data).__name__}")
    return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


__all__ = ["ConfigError", "ServiceError", "Transmitter", "image"]
