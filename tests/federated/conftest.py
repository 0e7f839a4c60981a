"""Shared fixtures of the federated tests: tiny frozen bases (random cnn students) and tiny specs."""

from __future__ import annotations

import pytest
import torch


def make_base(folder, seed: int = 0, widths=(4, 8)) -> str:
    """A tiny cnn image student saved as a folder; returns its base spec (``student:<folder>``).

    Random weights, but its batch-norm statistics are set on Fashion-MNIST images and its projection is
    centred on them (as a trained net's would be): untouched, every image gives almost the same embedding
    and nothing could be learnt through it in a few steps."""
    from ragsc.distill.student_nets import ImageStudent, ImageStudentConfig
    from ragsc.distill.students import StudentConfig, TeacherRef, save_student
    from ragsc.federated.data import load_images

    cfg = ImageStudentConfig(image_size=16, widths=widths, out_dim=12)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ImageStudent(cfg)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # a cumulative average over the calibration batch
    x, _ = load_images("fashion-mnist", "train", 512, 16)
    with torch.no_grad():
        net.train()(x.float() / 127.5 - 1)
        net.eval()
        pooled = net.backbone(x.float() / 127.5 - 1).mean(0)
        net.head.proj.bias.copy_(-net.head.proj.weight @ pooled)
    teacher = TeacherRef(spec="none", fingerprint="none", dim=12)
    save_student(folder, StudentConfig(teacher=teacher, image=cfg), image=net)
    return f"student:{folder}"


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> str:
    return make_base(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="session")
def other_base(tmp_path_factory) -> str:
    """Same architecture as ``tiny_base``, other weights (another fingerprint)."""
    return make_base(tmp_path_factory.mktemp("other-base"), seed=1)


@pytest.fixture
def tiny_spec(tiny_base):
    """``tiny_spec(**sections)``: a Fashion-MNIST spec on the tiny base, 3 clients, 300 items, 1 round."""
    from ragsc.federated import spec_from

    def make(**overrides):
        d = {"base": tiny_base, "data": {"dataset": "fashion-mnist", "n_train": 300, "n_test": 200},
             "clients": {"n": 3, "alpha": 0.5}, "train": {"rounds": 1, "batch_size": 64},
             "channel": {"snr_db": 5.0, "k_symbols": 4}}
        for k, v in overrides.items():
            d[k] = {**d[k], **v} if isinstance(v, dict) and isinstance(d.get(k), dict) else v
        return spec_from(d)

    return make


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread (tiny models run faster so on a busy machine); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
