"""Shared helpers of the channel tests."""

from __future__ import annotations

import pytest
import torch


class ChannelSpy:
    """Wraps a :class:`ragsc.channel.Channel` and records the shape of every tensor sent through it."""

    def __init__(self, channel) -> None:
        self.channel = channel
        self.shapes: list[tuple[int, ...]] = []
        self.dtypes: list[torch.dtype] = []

    def __call__(self, x, no):
        self.shapes.append(tuple(x.shape))
        self.dtypes.append(x.dtype)
        return self.channel(x, no)

    def coefficients(self, n_items, k):
        return self.channel.coefficients(n_items, k)

    def __getattr__(self, name):
        return getattr(self.channel, name)


@pytest.fixture
def spy():
    """``spy(obj)`` replaces ``obj.channel`` by a :class:`ChannelSpy` and returns the spy."""

    def install(obj):
        s = ChannelSpy(obj.channel)
        obj.channel = s
        return s

    return install
