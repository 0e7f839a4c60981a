"""A CAT codec's folder: ``config.json`` (its :class:`~ragsc.channel.cat.CATConfig`, rate table included) and
``weights.safetensors``, each written atomically; read back into a codec in eval mode.

:meth:`CATCodec.save <ragsc.channel.cat.CATCodec.save>` and :meth:`CATCodec.load
<ragsc.channel.cat.CATCodec.load>` call :func:`save` and :func:`load`. The folder format is what the shipped
and tested codec folders hold: keep it byte-compatible.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ragsc.channel.cat.config import CATConfig
from ragsc.errors import ConfigError, ModelLoadError

if TYPE_CHECKING:
    from ragsc.channel.cat.codec import CATCodec

CONFIG_FILE, WEIGHTS_FILE = "config.json", "weights.safetensors"


def save(codec: CATCodec, folder: str | Path) -> Path:
    """Write ``config.json`` (the config with its rate table) and ``weights.safetensors`` of ``codec`` into
    ``folder`` (created if need be); returns ``folder``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in codec.state_dict().items()}
    text = codec.config.model_dump_json(indent=2) + "\n"
    for name, write in ((WEIGHTS_FILE, lambda p: save_file(state, str(p), metadata={"format": "pt"})),
                        (CONFIG_FILE, lambda p: p.write_text(text))):
        tmp = folder / (name + ".tmp")
        try:
            write(tmp)
            os.replace(tmp, folder / name)  # never a half-written file under the real name
        finally:
            tmp.unlink(missing_ok=True)
    return folder


def load(cls: type[CATCodec], folder: str | Path, device: str = "cpu") -> CATCodec:
    """Rebuild a ``cls`` codec from :func:`save`'s folder, on ``device``, in eval mode.

    Raises
    ------
    ModelLoadError
        A file is missing or corrupt, the config is invalid, or the weights do not match it (each
        names the file).
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg_path, w_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise ModelLoadError(f"CAT codec: {p} not found (a codec folder holds {CONFIG_FILE} and "
                                 f"{WEIGHTS_FILE}, written by CATCodec.save)")
    try:
        data = json.loads(cfg_path.read_text())
        if not isinstance(data, dict):
            raise ConfigError(f"expected a JSON object, got {type(data).__name__}")
        codec = cls(CATConfig(**data))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ConfigError) as exc:
        raise ModelLoadError(f"CAT codec: cannot read {cfg_path}: {exc}") from None
    try:
        state = load_file(str(w_path), device=device)
    except Exception as exc:  # not safetensors, truncated: say which file
        raise ModelLoadError(f"CAT codec: cannot read {w_path}: {exc}") from None
    try:
        codec.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelLoadError(f"CAT codec: {w_path} does not match the architecture in {cfg_path}: "
                             f"{str(exc).splitlines()[0]}") from None
    return codec.to(device).eval()
