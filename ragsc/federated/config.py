"""The federated run's spec: what ``ragsc federated run SPEC`` reads (YAML or JSON).

Every section is a pydantic model (``extra="forbid"``); a bad field raises
:class:`~ragsc.errors.ConfigError` naming it. An example with every field explained:
``pipelines/federated/fashion-mnist.yaml``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ragsc.config import ChannelConfig, Config, load_yaml, validate
from ragsc.errors import ConfigError

DATASETS = ("fashion-mnist", "easy-vqa", "easy-vqa:color")
ENGINES = ("inprocess", "flower-sim", "flower-grpc")


class DataConfig(Config):
    """Where the clients' local data come from (every client holds a Dirichlet share of the train split)."""

    dataset: Literal["fashion-mnist", "easy-vqa", "easy-vqa:color"] = Field(
        "fashion-mnist", description="fashion-mnist (10 classes), easy-vqa (labelled by shape, 3 classes, "
        "as the teacher stores label it) or easy-vqa:color (8 classes)")
    n_train: int | None = Field(6000, ge=1, description="the first n items of the train split, dealt to the "
                                "clients (null: all of them less the n_val validation items)")
    n_test: int | None = Field(2000, ge=1, description="the first n items of the test split (null: all)")
    n_val: int | None = Field(None, ge=1, description="validation items held back from the clients: the "
                              "n_val train-split items after the first n_train (with n_train null: the "
                              "last n_val, the clients share the rest); null: none held back")
    evaluate_on: Literal["test", "validation"] = Field(
        "test", description="what the accuracy after every round is measured on: choose settings on "
        "'validation' (needs n_val), report on 'test'")
    image_size: int | None = Field(None, ge=8, le=512, description="input size (null: the base model's)")

    @model_validator(mode="after")
    def _validation_needs_items(self) -> DataConfig:
        if self.evaluate_on == "validation" and self.n_val is None:
            raise ValueError("data.evaluate_on is 'validation' but data.n_val is not set: hold back n_val "
                             "train-split items to validate on")
        return self


class LoraConfig(Config):
    """The low-rank adapters on the frozen base (peft's LoRA on its Conv2d / Linear layers)."""

    rank: int = Field(4, ge=1, le=256)
    alpha: float = Field(8.0, gt=0, allow_inf_nan=False, description="LoRA scaling is alpha / rank")
    targets: tuple[str, ...] | None = Field(
        None, description="module names in the base (e.g. backbone.21, head.proj); null: the last "
        "convolution and the projection")


class ReceiverConfig(Config):
    """The server's half: an MLP on the equalised symbols and a linear task head."""

    hidden: int = Field(256, ge=1, le=65536)


class ClientsConfig(Config):
    """The federation: how many clients, how non-IID, who takes part, who fails."""

    n: int = Field(8, ge=1, le=100_000, description="number of clients")
    alpha: float = Field(0.5, gt=0, allow_inf_nan=False, description="Dirichlet concentration over labels "
                         "(small: each client sees few classes)")
    fraction: float = Field(1.0, gt=0, le=1, description="share of the clients drawn each round (at least 1)")
    dropout: float = Field(0.0, ge=0, le=1, description="chance that a drawn client fails during the round "
                           "(after sending some symbols, or before returning its update)")
    min_examples: int = Field(1, ge=1, description="the Dirichlet draw is repeated until every client holds "
                              "at least this many items")


class TrainConfig(Config):
    rounds: int = Field(20, ge=1, le=100_000)
    local_epochs: int = Field(1, ge=1, le=1000, description="passes over its data a client makes per round")
    batch_size: int = Field(64, ge=1, le=65536)
    lr: float = Field(3e-3, gt=0, allow_inf_nan=False, description="the clients' Adam learning rate "
                      "(adapters and transmitter)")
    server_lr: float = Field(1e-3, gt=0, allow_inf_nan=False, description="the server's Adam learning rate "
                             "(receiver and head)")
    train_transmitter: bool = Field(False, description="also train (and average) the transmitter; by default "
                                    "it is a fixed seeded projection, the same on every device, and only the "
                                    "adapters in front of it train")
    lr_decay: float = Field(1.0, gt=0, le=1, description="both learning rates are multiplied by this each "
                            "round (round r trains at lr * lr_decay ** (r - 1))")
    central_epochs: int | None = Field(None, ge=1, le=100_000, description="epochs of the centralised "
                                       "reference (`--centralised`; null: as many as rounds)")
    server_momentum: float = Field(0.0, ge=0, lt=1, description="FedAvgM: the global adapters move by a "
                                   "momentum of the rounds' averaged updates (0: plain FedAvg)")
    center: bool = Field(True, description="centre the transmitter's input on the federation's mean "
                         "embedding (before round 1 each client sends the sum of its embeddings and its "
                         "count)")


class FederatedSpec(Config):
    """A federated split fine-tuning run (see :mod:`ragsc.federated`)."""

    base: str = Field("student:embedded", description="the frozen pretrained image encoder: student:embedded "
                      "(shipped) or student:<dir> (a cnn image student)")
    data: DataConfig = DataConfig()
    lora: LoraConfig = LoraConfig()
    channel: ChannelConfig = Field(ChannelConfig(snr_db=5.0, k_symbols=8),
                                   description="the channel the symbols cross; k_symbols = complex symbols "
                                   "per image, in training and evaluation")
    receiver: ReceiverConfig = ReceiverConfig()
    clients: ClientsConfig = ClientsConfig()
    train: TrainConfig = TrainConfig()
    engine: Literal["inprocess", "flower-sim", "flower-grpc"] = Field(
        "inprocess", description="inprocess (sequential, the default), flower-sim (Flower's simulation "
        "engine, Ray) or flower-grpc (a Flower server and one process per client on localhost)")
    timeout_s: float = Field(600.0, gt=0, allow_inf_nan=False, description="Flower engines: how long the "
                             "server waits for a client's reply before counting it as dropped")
    seed: int = Field(0, description="seeds the split, the participation draw, the dropouts, the "
                      "initialisation, the batches and the channel")

    @field_validator("channel")
    @classmethod
    def _fixed_symbols(cls, v: ChannelConfig) -> ChannelConfig:
        if v.k_symbols is None:
            raise ValueError("channel.k_symbols is the number of complex symbols per image: set a number")
        if v.seed is None:
            raise ValueError("channel.seed must be a number: the in-process and Flower runs must see the "
                             "same channel")
        return v

    def digest(self) -> str:
        """A short hash of the spec: a Flower client started with another spec is refused."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


def load_spec(path: str | Path) -> FederatedSpec:
    """Read a YAML (or JSON, a subset of YAML) spec; a bad file or field raises :class:`ConfigError`."""
    return load_yaml(path, FederatedSpec, "federated spec")


def spec_from(value: FederatedSpec | dict | str | Path) -> FederatedSpec:
    """A spec from a spec, a dict of its fields, a JSON string or a spec file."""
    if isinstance(value, FederatedSpec):
        return value
    if isinstance(value, dict):
        return validate(FederatedSpec, value, "federated spec")
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            return validate(FederatedSpec, json.loads(value), "federated spec")
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not a JSON federated spec: {exc}") from None
    return load_spec(value)
