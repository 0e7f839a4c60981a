"""Fixtures of the compression tests: a tiny student encoder (both towers) and a few scoring items."""

from __future__ import annotations

import pytest
import torch

TEACHER_FP = "teacher-fingerprint"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Torch on one thread: tiny models run several times faster so on a busy machine (restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def student_dir(tmp_path_factory):
    """A tiny random student of a (fake) 16-d teacher: a 16 px CNN image tower, a 1-layer text tower.

    Its BatchNorm statistics are those of easy-VQA images (so that folding them is not an identity and
    the float tower is a consistent network, as a trained one would be)."""
    from PIL import Image

    from ragsc.datasets import load_easy_vqa
    from ragsc.distill.student_nets import (
        ImageStudent,
        ImageStudentConfig,
        TextStudent,
        TextStudentConfig,
        image_transform,
        load_tokenizer,
    )
    from ragsc.distill.students import StudentConfig, TeacherRef, save_student

    torch.manual_seed(0)
    image = ImageStudentConfig(image_size=16, widths=(8, 16), out_dim=16)
    text = TextStudentConfig(width=16, layers=1, heads=2, out_dim=16, max_tokens=16)
    image_net = ImageStudent(image)
    for m in image_net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
            m.momentum = None
    pixels = torch.stack([image_transform(16)(Image.open(x.path).convert("RGB"))
                          for x in load_easy_vqa("train")[100:164]])
    with torch.no_grad():
        image_net.train()(pixels)
    folder = tmp_path_factory.mktemp("student")
    config = StudentConfig(teacher=TeacherRef(spec="fake", fingerprint=TEACHER_FP, dim=16), image=image,
                           text=text)
    save_student(folder, config, image_net.eval(), TextStudent(text, len(load_tokenizer("minilm"))).eval())
    return folder


@pytest.fixture(scope="module")
def student(student_dir):
    from ragsc.encoders import load_encoder

    return load_encoder(f"student:{student_dir}")


@pytest.fixture(scope="session")
def data():
    """4 sentences and 8 easy-VQA test images with their captions."""
    from ragsc.compress import EvalData
    from ragsc.datasets import load_easy_vqa

    test = load_easy_vqa("test")[:8]
    return EvalData(["a red circle on white", "the cat sat on the mat", "boats at noon in the harbour",
                     "how are you today"], [x.path for x in test], [x.caption for x in test])


@pytest.fixture(scope="session")
def train_images():
    from ragsc.datasets import load_easy_vqa

    return [x.path for x in load_easy_vqa("train")[:16]]
