"""ragsc.eval.scoring: mean task metrics of a receiver's outputs, and retrieval alone."""

from types import SimpleNamespace

import pytest
from PIL import Image

from ragsc.errors import InputError
from ragsc.eval.scoring import PSNR_CAP_DB, TASK_METRICS, retrieval_scores, score
from ragsc.eval.sets import EvalSet
from ragsc.pipelines import Output


def _img(color):
    return Image.new("RGB", (64, 64), color)


def _one_image_set(image, answers=()):
    questions = [f"q{i}" for i in range(len(answers))]
    return EvalSet(items=[{"image": image, "questions": questions}], texts=[None], images=[image],
                   labels=[("red", "circle")], answers=[list(answers)])


def test_score_exact_values(embedded):
    red = _img((255, 0, 0))
    ev = EvalSet(items=["a red circle", {"image": red, "questions": ["q1", "q2"]}],
                 texts=["a red circle", None], images=[None, red], labels=[None, ("red", "circle")],
                 answers=[[], ["circle", "red"]])
    perfect = [Output("text", text="a red circle"),
               Output("image", image=red.copy(), caption="A red circle.", answers=["circle", "red"])]
    s = score(perfect, ev)
    assert set(s) == {f"{t}/{m}" for t, ms in TASK_METRICS.items() for m in ms}
    assert s["text/bleu1"] == pytest.approx(1.0) and s["text/bleu4"] == pytest.approx(1.0)
    assert s["text/similarity"] == pytest.approx(1.0, abs=1e-4)
    assert s["image/psnr"] == PSNR_CAP_DB and s["image/ssim"] == pytest.approx(1.0)  # an exact copy: the cap
    assert s["image/class_accuracy"] == 1.0 and s["vqa/accuracy"] == 1.0

    wrong = [Output("text", text=""),
             Output("image", image=_img((0, 0, 255)), caption="a blue square", answers=["circle", "blue"])]
    s = score(wrong, ev)
    assert s["text/bleu1"] == 0.0 and s["text/similarity"] == 0.0
    assert s["image/class_accuracy"] == 0.0 and s["vqa/accuracy"] == 0.5
    assert s["image/psnr"] < 10 and s["image/ssim"] < 0.5

    # right colour, wrong shape is still a wrong class; no caption at all -> no class metric
    s = score([perfect[0], Output("image", image=red, caption="a red triangle")], ev)
    assert s["image/class_accuracy"] == 0.0 and "vqa/accuracy" not in s
    s = score([perfect[0], Output("image", image=red)], ev)
    assert "image/class_accuracy" not in s and "image/ssim" in s


def test_score_only_reports_tasks_present():
    ev = EvalSet(items=["a"], texts=["a teal square"], images=[None], labels=[None], answers=[[]])
    s = score([Output("text", text="a teal square")], ev)
    assert set(s) == {"text/bleu1", "text/bleu4", "text/similarity"}


def test_vqa_accuracy_normalises_answers_like_the_metric():
    # ragsc.eval.metrics.accuracy: case and spacing do not make an answer wrong; the word does
    ev = _one_image_set(_img((255, 0, 0)), answers=["circle", "red", "yes"])
    out = Output("image", answers=["Circle", " red ", "no"])
    assert score([out], ev)["vqa/accuracy"] == pytest.approx(2 / 3)


def test_score_rejects_outputs_that_do_not_match_the_set():
    ev = EvalSet(items=["a", "b"], texts=["a", "b"], images=[None, None], labels=[None, None],
                 answers=[[], []])
    with pytest.raises(InputError, match=r"1 outputs to score .*'items': 2"):
        score([Output("text", text="a")], ev)
    ragged = EvalSet(items=["a"], texts=["a"], images=[], labels=[None], answers=[[]])
    with pytest.raises(InputError, match="'images': 0"):
        retrieval_scores([Output("text", text="a")], ragged)


def _hit(modality, uri):
    return SimpleNamespace(item=SimpleNamespace(modality=modality, source_uri=uri, text=None))


def test_retrieval_scores_use_the_best_retrieved_image(tmp_path):
    sent = _img((200, 30, 30))
    sent.save(tmp_path / "same.png")
    _img((0, 0, 0)).save(tmp_path / "black.png")
    ev = _one_image_set(sent)
    generated = Output("image", image=_img((0, 0, 255)), caption="a red circle")

    # the first hit with an image wins (a text hit is skipped): the very image -> the PSNR cap
    same, black = str(tmp_path / "same.png"), str(tmp_path / "black.png")
    ctx = [_hit("text", None), _hit("image", same), _hit("image", black)]
    s = retrieval_scores([Output("image", image=generated.image, context=ctx)], ev)
    assert set(s) == {"image/psnr", "image/ssim"}  # retrieval alone reconstructs images, nothing else
    assert s["image/psnr"] == PSNR_CAP_DB and s["image/ssim"] == pytest.approx(1.0)

    ctx = [_hit("image", black), _hit("image", same)]
    s = retrieval_scores([Output("image", context=ctx)], ev)
    assert s == score([Output("image", image=_img((0, 0, 0)))], ev)

    # nothing with an image retrieved: mid-grey; no context at all (no RAG): the output's own image
    grey = retrieval_scores([Output("image", context=[_hit("text", None)])], ev)
    assert grey == score([Output("image", image=_img((128, 128, 128)))], ev)
    own = retrieval_scores([generated], ev)
    full = score([generated], ev)
    assert own == {"image/psnr": full["image/psnr"], "image/ssim": full["image/ssim"]}
