"""The two halves of the split model, and the adapters' files.

Device side (:class:`ClientModel`): a frozen pretrained image encoder (a cnn image student, e.g. the
shipped ``student:embedded``) with LoRA adapters injected by ``peft`` into some of its Conv2d / Linear
layers, then a transmitter (a linear map to ``k`` complex symbols at unit mean power per symbol). Server
side (:class:`ReceiverHead`): an MLP on the equalised received symbols and a linear task head. The cut is
the channel: what crosses it are symbols one way and the loss's gradient w.r.t. them the other way.

peft fits here as is: :func:`peft.inject_adapter_in_model` takes any ``nn.Module`` and wraps the named
Conv2d / Linear layers (a conv adapter is a ``r``-channel conv of the layer's kernel followed by a 1x1
conv); it freezes everything else. Only the adapters train on the device (and the transmitter, if asked);
they are what FedAvg averages (A and B separately, as FedIT and most federated-LoRA work do).

The frozen layers below the first adapted one compute the same thing in every round, so a client runs
them once over its data (:meth:`ClientModel.features`) and trains from their output: exact (no dropout,
batch norm in eval mode), and it makes a round cost the adapted top layers only.

Saved (:func:`save_adapters` / :func:`load_adapters`) as every model is (:mod:`ragsc.saved`, kind
``federated-adapters``, :class:`Adapters`): the base model's spec and fingerprint, the adapted layers and
``k_symbols`` in ``config.json``; the trainable device weights and the server's half in ``model.safetensors``.
Adapters are refused on another base model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import Field
from torch import nn

from ragsc.channel.cat import normalize_power
from ragsc.config import Config
from ragsc.errors import ConfigError, InputError, ModelLoadError
from ragsc.saved import Saved, build, load_state, parse_config, read, require, save


# ----------------------------------------------------------------------------------------- the base
@dataclass(frozen=True)
class Base:
    """A frozen pretrained image encoder: its spec, architecture config, weights and fingerprint."""

    spec: str
    config: object  # ragsc.distill.students.ImageStudentConfig
    state: dict
    fingerprint: str

    @property
    def image_size(self) -> int:
        return self.config.image_size


def fingerprint(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the weights' names, dtypes, shapes and bytes (16 hex digits)."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().contiguous().cpu()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:16]


def base_folder(spec: str) -> Path:
    kind, _, rest = spec.partition(":")
    if kind != "student" or not rest:
        raise ConfigError(f"base must be student:embedded or student:<dir> (a cnn image student), "
                          f"got {spec!r}")
    if rest == "embedded":
        from ragsc._assets import asset_dir

        return asset_dir("encoders") / "student-embedded"
    return Path(rest)


def load_base(spec: str) -> Base:
    """The image tower of a student folder (``student:embedded`` or ``student:<dir>``), frozen."""
    from ragsc.distill.students import read_config
    from ragsc.saved import read

    folder = base_folder(spec)
    config = read_config(folder).image
    if config is None:
        raise ModelLoadError(f"{folder}: this student has no image tower to fine-tune")
    if config.kind != "cnn" or config.code_dim:
        raise ConfigError(f"{folder}: federated fine-tuning takes a plain cnn image student (kind cnn, no "
                          f"bottleneck head), this one is kind {config.kind!r} with code_dim "
                          f"{config.code_dim}")
    state = {k.removeprefix("image."): v for k, v in read(folder).tensors.items() if k.startswith("image.")}
    return Base(spec, config, state, fingerprint(state))


def _image_student(base: Base) -> nn.Module:
    from ragsc.distill.student_nets import ImageStudent

    # the shapes are checked against the student's config before the network is built
    return build(lambda: ImageStudent(base.config), base.state, base.spec).eval().requires_grad_(False)


def default_targets(base: Base) -> tuple[str, ...]:
    """The last convolution of the backbone and the projection onto the teacher's space."""
    net = _image_student(base)
    convs = [n for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    return (convs[-1], "head.proj")


def adaptable(net: nn.Module) -> list[str]:
    return [n for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


# ----------------------------------------------------------------------------------------- device side
class ClientModel(nn.Module):
    """Frozen base + LoRA adapters + transmitter: normalised pixels -> ``k`` complex symbols.

    Parameters
    ----------
    base
        :func:`load_base`'s result.
    rank, alpha, targets
        LoRA settings (``targets`` None: :func:`default_targets`).
    k_symbols
        Complex symbols per image.
    seed
        Seeds the adapters' and the transmitter's initialisation (every client and the server build the
        same initial model from it).
    train_transmitter
        Whether the transmitter trains (and is averaged) with the adapters. By default it stays the
        seeded random projection: trained on non-IID clients, the clients' transmitters drift apart within
        a round and the shared receiver learns a mix of codes, while the adapters in front of a fixed one
        reshape what it sends (Fashion-MNIST, 8 clients, alpha 0.5, one local epoch, after 30 rounds:
        federated 0.65 against 0.61 with a trained transmitter, centralised about 0.70 either way, and a
        fifth less uplink: the transmitter's 6,144 weights no longer travel).
    """

    def __init__(self, base: Base, rank: int, alpha: float, targets: tuple[str, ...] | None, k_symbols: int,
                 seed: int = 0, train_transmitter: bool = False) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        super().__init__()
        self.base_spec, self.base_fingerprint, self.k_symbols = base.spec, base.fingerprint, k_symbols
        targets = tuple(targets) if targets else default_targets(base)
        net = _image_student(base)
        known = adaptable(net)
        bad = [t for t in targets if t not in known]
        if bad:
            raise ConfigError(f"lora.targets {bad} are not Conv2d / Linear layers of {base.spec}; its "
                              f"layers: {', '.join(known)}")
        self.targets = targets
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.encoder = inject_adapter_in_model(
                LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), lora_dropout=0.0), net)
            # no bias: a constant offset in the symbols carries nothing and costs power
            self.transmitter = nn.Linear(base.config.out_dim, 2 * k_symbols, bias=False)
        self.transmitter.requires_grad_(train_transmitter)
        # the federation's mean embedding, subtracted before the transmitter (set once, see calibrate):
        # a base's embeddings share a large common direction, which would otherwise take most of the power
        self.register_buffer("center", torch.zeros(base.config.out_dim))
        # the frozen prefix: backbone layers below the first adapted one (computed once per client)
        first = [int(t.split(".")[1]) for t in targets if t.startswith("backbone.")]
        self.cut = min(first) if first else len(self.encoder.backbone)
        self.eval()

    def train(self, mode: bool = True) -> ClientModel:
        # the frozen base keeps its batch-norm statistics; nothing here has dropout
        return super().train(False)

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """uint8 ``[N, 3, S, S]`` -> the frozen prefix's output (the adapters' input), computed once."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise InputError(f"images must be uint8 [N, 3, S, S], got {images.dtype} {tuple(images.shape)}")
        prefix = self.encoder.backbone[: self.cut]
        out = [prefix(images[i:i + batch_size].float() / 127.5 - 1)
               for i in range(0, len(images), batch_size)]
        return torch.cat(out) if out else torch.empty(0)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """:meth:`features`' output ``[B, ...]`` -> the adapted encoder's embedding ``[B, D]``."""
        return self.encoder.head(self.encoder.backbone[self.cut:](features))[0]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """:meth:`features`' output ``[B, ...]`` -> symbols ``[B, k]`` complex64, unit mean power per row."""
        h = self.embed(features) - self.center
        z = self.transmitter(h).view(len(h), self.k_symbols, 2)
        return normalize_power(torch.view_as_complex(z.contiguous()))

    def trainable(self) -> dict[str, torch.Tensor]:
        """The device's trainable weights (adapters + transmitter), by name: what FedAvg averages."""
        return {k: p for k, p in self.named_parameters() if p.requires_grad}

    def _state(self) -> dict[str, torch.Tensor]:
        return {**self.trainable(), "center": self.center}

    def get_weights(self) -> dict[str, torch.Tensor]:
        """What a client receives and returns each round: the trainable weights and the centre."""
        return {k: p.detach().clone() for k, p in self._state().items()}

    def set_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Load :meth:`get_weights`' tensors; other names or shapes (adapters of another model) raise
        InputError."""
        own = self._state()
        if set(weights) != set(own):
            missing, extra = sorted(set(own) - set(weights)), sorted(set(weights) - set(own))
            raise InputError(f"these adapters do not fit this model: missing {missing[:3]}, unexpected "
                             f"{extra[:3]}")
        with torch.no_grad():
            for k, p in own.items():
                w = torch.as_tensor(weights[k])
                if w.shape != p.shape:
                    raise InputError(f"adapter {k}: shape {tuple(w.shape)}, this model's is {tuple(p.shape)}")
                p.copy_(w)

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.trainable().values())

    def num_parameters(self) -> int:
        """Every device-side parameter: the frozen base, the adapters and the transmitter."""
        return sum(p.numel() for p in self.parameters())


# ----------------------------------------------------------------------------------------- server side
class ReceiverHead(nn.Module):
    """Equalised symbols ``[B, k]`` complex -> class logits ``[B, C]``: an MLP and a linear head."""

    def __init__(self, k_symbols: int, hidden: int, num_classes: int, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            self.decoder = nn.Sequential(nn.Linear(2 * k_symbols, hidden), nn.ReLU(),
                                         nn.Linear(hidden, hidden), nn.ReLU())
            self.head = nn.Linear(hidden, num_classes)

    def forward(self, x_hat: torch.Tensor) -> torch.Tensor:
        return self.head(self.decoder(torch.view_as_real(x_hat).flatten(1)))


# ----------------------------------------------------------------------------------------- files
class AdaptedBase(Config):
    """The base model adapters were trained on: its spec and fingerprint."""

    spec: str = Field(min_length=1)
    fingerprint: str = Field(min_length=1)


class AdaptersConfig(Config):
    """What a federated model's ``config.json`` holds as its ``config`` (bounded like every saved config)."""

    base: AdaptedBase
    targets: list[str] = Field(min_length=1, max_length=4096, description="the adapted layers")
    k_symbols: int = Field(ge=1, le=1_000_000, description="complex symbols per image")


class Adapters:
    """A federated run's trained parts as saved (:mod:`ragsc.saved`, kind ``federated-adapters``): the LoRA
    adapters and the transmitter (``adapters.*``), the server's receiver (``receiver.*``, optional), and in
    ``config`` the base model's spec and fingerprint, the adapted layers and ``k_symbols``."""

    kind, format_version = "federated-adapters", 1

    def __init__(self, config: dict, adapters: dict[str, torch.Tensor],
                 receiver: dict[str, torch.Tensor] | None = None, info: dict | None = None,
                 folder: Path | None = None) -> None:
        self.config, self.adapters, self.receiver = config, adapters, receiver
        self.info, self.folder = info or {}, folder

    @classmethod
    def from_saved(cls, saved: Saved) -> Adapters:
        config = saved.config
        parse_config(AdaptersConfig, config, saved.folder, "federated adapters")  # checked, kept as read
        part = {name: {k.removeprefix(name + "."): v for k, v in saved.tensors.items()
                       if k.startswith(name + ".")} for name in ("adapters", "receiver")}
        return cls(config, part["adapters"], part["receiver"] or None, saved.info, saved.folder)

    def to_saved(self) -> Saved:
        tensors = {f"adapters.{k}": v for k, v in self.adapters.items()}
        tensors.update({f"receiver.{k}": v for k, v in (self.receiver or {}).items()})
        return Saved(self.kind, self.format_version, self.config, tensors, self.info)


def save_adapters(folder: str | Path, model: ClientModel, receiver: ReceiverHead | None = None,
                  info: dict | None = None, *, overwrite: bool = False) -> Path:
    """Save the device's trained weights (and the server's receiver) into ``folder`` as a model folder
    (:class:`Adapters`)."""
    tensors = {**model.get_weights(), "transmitter.weight": model.transmitter.weight.detach().clone()}
    config = {"base": {"spec": model.base_spec, "fingerprint": model.base_fingerprint},
              "targets": list(model.targets), "k_symbols": model.k_symbols}
    rx = {k: v.detach() for k, v in receiver.state_dict().items()} if receiver is not None else None
    return save(Adapters(config, tensors, rx, info), folder, overwrite=overwrite)


def load_adapters(folder: str | Path, model: ClientModel, receiver: ReceiverHead | None = None) -> dict:
    """Load saved adapters into ``model`` (and the receiver into ``receiver``); returns their config with
    ``info``.

    Adapters trained on another base model are refused (:class:`ModelLoadError` naming both models),
    before any weight is touched.
    """
    folder = Path(folder)
    require(folder, Adapters.kind, "federated model",
            "train some with `ragsc federated run SPEC --out DIR`")
    saved = Adapters.from_saved(read(folder))
    meta = {**saved.config, "info": saved.info}
    theirs = saved.config["base"]
    if theirs.get("fingerprint") != model.base_fingerprint:
        raise ModelLoadError(f"{folder}: these adapters were trained on base {theirs.get('spec')!r} "
                             f"(fingerprint {theirs.get('fingerprint')}), this model's base is "
                             f"{model.base_spec!r} (fingerprint {model.base_fingerprint}); load them onto "
                             "that base")
    weights = dict(saved.adapters)
    fixed = "transmitter.weight" not in model.get_weights()  # saved with the adapters, never sent
    transmitter = weights.pop("transmitter.weight", None) if fixed else None
    try:
        if fixed and (transmitter is None or transmitter.shape != model.transmitter.weight.shape):
            raise InputError(f"transmitter {None if transmitter is None else tuple(transmitter.shape)}, this "
                             f"model's is {tuple(model.transmitter.weight.shape)}")
        model.set_weights(weights)
        if fixed:
            with torch.no_grad():
                model.transmitter.weight.copy_(transmitter)
    except InputError as exc:
        raise ModelLoadError(f"{folder}: {exc} (saved with targets {meta.get('targets')}, "
                             f"k_symbols {meta.get('k_symbols')})") from None
    if receiver is not None:
        if saved.receiver is None:
            raise ModelLoadError(f"{folder}: no receiver was saved with these adapters")
        load_state(receiver, saved.receiver, str(folder))
    return meta
