"""Sources: folder, COCO, VQA, jsonl, text, paragraphs; awkward files; bad sources fail before writing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from ragsc.errors import InputError
from ragsc.kb import KnowledgeBase, ingest
from ragsc.kb.sources import detect_format, records

from ._fakes import FakeEncoder


def png(path: Path, colour, size=(8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


@pytest.fixture
def enc():
    return FakeEncoder()


@pytest.fixture
def kb(new_kb, enc):
    return new_kb(encoder=enc)


def run(kb, source, enc, **kw):
    return ingest(kb, str(source), encoder=enc, progress=False, **kw)


# ---------------------------------------------------------------------------------------- folder
@pytest.fixture
def awkward_folder(tmp_path):
    d = tmp_path / "photos"
    png(d / "a_red.png", (255, 0, 0))
    (d / "a_red.txt").write_text("a red square\n")
    png(d / "b_blue.png", (0, 0, 255))  # no caption
    png(d / "c_green.png", (0, 255, 0))
    (d / "c_green.txt").write_bytes(b"caf\xe9 au lait, vert")  # latin-1, not UTF-8
    (d / "d_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    (d / "d_corrupt.txt").write_text("never seen")
    shutil.copy(d / "a_red.png", d / "e_copy_of_red.png")  # duplicate content
    (d / "e_copy_of_red.txt").write_text("same pixels, other caption")
    png(d / "sub" / "f_white.JPG", (250, 250, 250))  # nested, upper-case suffix
    (d / "sub" / "f_white.txt").write_text("a white square")
    (d / "readme.md").write_text("not an image")
    (d / "orphan.txt").write_text("a caption without an image")
    return d


def test_folder_records(awkward_folder):
    recs = list(records(str(awkward_folder)))
    assert detect_format(str(awkward_folder)) == "folder"
    names = [Path(r.source_uri).name for r in recs]
    assert names == ["a_red.png", "b_blue.png", "c_green.png", "d_corrupt.png", "e_copy_of_red.png",
                     "f_white.JPG"]
    by = dict(zip(names, recs))
    assert all(r.modality == "image" and r.path.is_file() and Path(r.source_uri).is_absolute() for r in recs)
    assert by["a_red.png"].text == "a red square" and by["a_red.png"].notes == ()
    assert by["b_blue.png"].text is None and by["b_blue.png"].notes == ("missing_caption",)
    assert (by["c_green.png"].text == "caf\ufffd au lait, vert"
            and by["c_green.png"].notes == ("non_utf8_caption",))
    assert by["f_white.JPG"].text == "a white square"


def test_folder_ingest_with_corrupt_missing_non_utf8_and_duplicates(kb, enc, awkward_folder):
    r = run(kb, awkward_folder, enc)
    assert r.seen == 6 and r.added == 4 and r.duplicates == 1
    assert r.skipped == {"corrupt_or_missing_image": 1}
    assert r.notes == {"missing_caption": 1, "non_utf8_caption": 1}
    kb = KnowledgeBase.open(kb.path)
    assert len(kb) == 4 and kb.stats()["by_modality"] == {"image": 4}
    got = {Path(it.source_uri).name: it.text for it in kb.items()}
    assert got == {"a_red.png": "a red square", "b_blue.png": None, "c_green.png": "caf\ufffd au lait, vert",
                   "f_white.JPG": "a white square"}
    # the stored vectors are the encoder's: an image query finds its own item
    hit = kb.search(enc.encode_images([awkward_folder / "b_blue.png"]).embeddings, k=1)[0][0]
    assert Path(hit.item.source_uri).name == "b_blue.png" and hit.score == pytest.approx(1.0, abs=1e-5)
    # ingesting again adds nothing: everything is a duplicate (the corrupt file is skipped again)
    again = run(kb, awkward_folder, enc)
    assert again.added == 0 and again.duplicates == 5 and again.skipped == {"corrupt_or_missing_image": 1}
    assert len(KnowledgeBase.open(kb.path)) == 4


def test_empty_sources_add_nothing(kb, enc, tmp_path):
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text("\n   \n\t\n")
    (tmp_path / "empty.jsonl").write_text("")
    for src in ("empty_dir", "empty.txt", "blank.txt", "empty.jsonl"):
        r = run(kb, tmp_path / src, enc)
        assert (r.seen, r.added, r.duplicates, sum(r.skipped.values())) == (0, 0, 0, 0), src
    assert len(KnowledgeBase.open(kb.path)) == 0


# ---------------------------------------------------------------------------------------- COCO / VQA
def test_coco_captions(kb, enc, tmp_path):
    d = tmp_path / "coco"
    png(d / "imgs" / "000001.jpg", (200, 10, 10))
    png(d / "imgs" / "000002.jpg", (10, 200, 10))
    png(d / "imgs" / "000003.jpg", (10, 10, 200))
    data = {
        "images": [{"id": 3, "file_name": "000003.jpg"}, {"id": 1, "file_name": "000001.jpg"},
                   {"id": 2, "file_name": "000002.jpg"}, {"id": 4, "file_name": "000004.jpg"}],
        "annotations": [{"id": 10, "image_id": 1, "caption": " A red thing. "},
                        {"id": 11, "image_id": 1, "caption": "Something red"},
                        {"id": 12, "image_id": 2, "caption": "A green thing"},
                        {"id": 13, "image_id": 4, "caption": "An image that is not on disk"}],
    }
    src = d / "captions_train.json"
    src.write_text(json.dumps(data))
    assert detect_format(str(src)) == "coco"
    recs = list(records(str(src), images=str(d / "imgs")))
    assert [r.extra["coco_id"] for r in recs] == [1, 2, 3, 4]  # by image id, stable
    assert recs[0].text == "A red thing." and recs[0].extra["captions"] == ["A red thing.", "Something red"]
    assert recs[2].text is None and recs[2].notes == ("missing_caption",)
    r = run(kb, src, enc, images=str(d / "imgs"))
    assert r.seen == 4 and r.added == 3 and r.skipped == {"corrupt_or_missing_image": 1}
    assert r.notes == {"missing_caption": 1}
    texts = sorted((it.extra["coco_id"], it.text) for it in KnowledgeBase.open(kb.path).items())
    assert texts == [(1, "A red thing."), (2, "A green thing"), (3, None)]


def test_coco_images_next_to_the_json_by_default(tmp_path):
    png(tmp_path / "x.png", (1, 2, 3))
    src = tmp_path / "c.json"
    src.write_text(json.dumps({"images": [{"id": 1, "file_name": "x.png"}], "annotations": []}))
    [rec] = records(str(src))
    assert rec.path == tmp_path / "x.png"


def vqa_files(folder: Path, qname="v2_questions_val.json", aname="v2_annotations_val.json"):
    folder.mkdir(parents=True, exist_ok=True)
    q = {"questions": [{"question_id": 7, "image_id": 70, "question": "What shape is it? "},
                       {"question_id": 5, "image_id": 50, "question": "What colour is the circle?"},
                       {"question_id": 6, "image_id": 60, "question": "Is there a cat?"}]}
    a = {"annotations": [{"question_id": 5, "multiple_choice_answer": "red"},
                         {"question_id": 7, "multiple_choice_answer": "triangle"}]}
    (folder / qname).write_text(json.dumps(q))
    (folder / aname).write_text(json.dumps(a))
    return folder / qname


def test_vqa_question_and_answer_files(kb, enc, tmp_path):
    src = vqa_files(tmp_path / "vqa")
    assert detect_format(str(src)) == "vqa"
    recs = list(records(str(src)))
    assert [r.text for r in recs] == ["What colour is the circle? red", "Is there a cat?",
                                      "What shape is it? triangle"]
    assert all(r.modality == "text" for r in recs)
    assert recs[0].extra == {"image_id": 50, "question_id": 5, "answer": "red"}
    assert recs[1].extra["answer"] is None and recs[0].source_uri == f"{src}#5"
    r = run(kb, src, enc)
    assert r.seen == 3 and r.added == 3
    # an explicit annotations file wins over the name rule
    other = tmp_path / "answers.json"
    other.write_text(json.dumps({"annotations": [{"question_id": 6, "multiple_choice_answer": "no"}]}))
    assert [r.text for r in records(str(src), annotations=str(other))][1] == "Is there a cat? no"


def test_vqa_annotations_found_when_the_folder_name_contains_questions(tmp_path):
    src = vqa_files(tmp_path / "questions_split")
    assert [r.extra["answer"] for r in records(str(src))] == ["red", None, "triangle"]


# ---------------------------------------------------------------------------------- jsonl / text / paragraphs
def test_jsonl(kb, enc, tmp_path):
    src = tmp_path / "docs.jsonl"
    src.write_bytes(b'{"text": "first doc", "lang": "en", "n": 1}\n'
                    b"\n"
                    b'{"text": "second doc"}\n'
                    b"{broken json\n"
                    b'{"title": "no text field"}\n'
                    b'{"text": "first doc", "n": 2}\n'
                    b'{"text": "caf\xe9"}\n')
    assert detect_format(str(src)) == "jsonl"
    recs = list(records(str(src)))
    assert [r.text for r in recs] == ["first doc", "second doc", None, None, "first doc", "caf\ufffd"]
    assert recs[0].extra == {"lang": "en", "n": 1} and recs[0].source_uri == f"{src}:1"
    assert (recs[1].source_uri == f"{src}:3" and recs[2].notes == ("bad_json",)
            and recs[3].notes == ("missing_text",))
    r = run(kb, src, enc)
    assert r.seen == 6 and r.added == 3 and r.notes == {"bad_json": 1, "missing_text": 1}
    kb = KnowledgeBase.open(kb.path)
    assert sorted(it.text for it in kb.items()) == ["caf\ufffd", "first doc", "second doc"]
    assert [it.extra for it in kb.items() if it.text == "first doc"] == [{"lang": "en", "n": 1}]


def test_records_without_text_are_all_skipped_not_duplicates(kb, enc, tmp_path):
    src = tmp_path / "notext.jsonl"
    src.write_text('{"title": "a"}\n{"title": "b"}\n{"text": "real"}\n')
    r = run(kb, src, enc)
    assert r.added == 1 and r.duplicates == 0 and r.skipped == {"empty_text": 2}


def test_text_lines(kb, enc, tmp_path):
    src = tmp_path / "lines.txt"
    src.write_bytes(b"alpha\n\n  beta  \nalpha\ngamma \xff\xfe\n")
    recs = list(records(str(src)))
    assert [r.text for r in recs] == ["alpha", "beta", "alpha", "gamma \ufffd\ufffd"]
    assert [r.source_uri for r in recs] == [f"{src}:{n}" for n in (1, 3, 4, 5)]
    assert recs[3].notes == ("non_utf8_text",)
    r = run(kb, src, enc)
    assert r.seen == 4 and r.added == 3 and r.duplicates == 1 and r.notes == {"non_utf8_text": 1}
    hit = KnowledgeBase.open(kb.path).search(enc.encode_texts("beta").embeddings, k=1)[0][0]
    assert hit.item.text == "beta" and hit.score == pytest.approx(1.0, abs=1e-5)


def test_paragraphs_with_percent_separators(kb, enc, tmp_path):
    src = tmp_path / "fortunes"
    src.write_text("First fortune,\nwith two lines.\n%\nSecond fortune.\n%\n%\n\nThird, after blanks.\n\n"
                   "Fourth\n  indented line\n%")
    recs = list(records(str(src), "paragraphs"))
    assert [r.text for r in recs] == ["First fortune,\nwith two lines.", "Second fortune.",
                                      "Third, after blanks.", "Fourth\n  indented line"]
    assert [r.source_uri for r in recs] == [f"{src}:{n}" for n in (1, 4, 8, 10)]
    assert detect_format(str(src)) == "text"  # paragraphs must be asked for
    r = run(kb, src, enc, fmt="paragraphs")
    assert r.added == 4 and len(KnowledgeBase.open(kb.path)) == 4


# ---------------------------------------------------------------------------------------- bad sources
def test_unknown_format_and_missing_source_fail_before_writing(kb, enc, tmp_path):
    src = tmp_path / "ok.txt"
    src.write_text("one\ntwo\n")
    gen = kb.manifest["generation"]
    with pytest.raises(InputError, match="unknown source format 'csv'"):
        run(kb, src, enc, fmt="csv")
    with pytest.raises(InputError, match="source not found"):
        run(kb, tmp_path / "nope.txt", enc)
    with pytest.raises(InputError, match="easy-vqa source must be 'train' or 'test'"):
        run(kb, "validation", enc, fmt="easy-vqa")
    neither = tmp_path / "other.json"
    neither.write_text('{"foo": 1}')
    with pytest.raises(InputError, match="neither COCO captions nor VQA"):
        run(kb, neither, enc)
    with pytest.raises(InputError, match="distributed"):
        run(kb, src, enc, distributed="spark")
    after = KnowledgeBase.open(kb.path)
    assert after.manifest["generation"] == gen and len(after) == 0
    assert not list(kb.path.glob(".staging-*")) and enc.calls == {"text": 0, "image": 0}


def test_malformed_json_source_is_an_input_error(tmp_path):
    src = tmp_path / "broken.json"
    src.write_text("{ not json")
    with pytest.raises(InputError):
        records(str(src))


@pytest.mark.parametrize("content", ["5", '"a string"', "null", "[1, 2]", "true"])
def test_a_json_file_that_is_not_an_object_is_an_input_error(kb, enc, tmp_path, content):
    src = tmp_path / "scalar.json"
    src.write_text(content)
    gen = kb.manifest["generation"]
    with pytest.raises(InputError, match="scalar.json: .*not a JSON object"):
        run(kb, src, enc)
    for fmt in ("coco", "vqa"):
        with pytest.raises(InputError, match=f"a {fmt} file needs the keys"):
            run(kb, src, enc, fmt=fmt)
    assert KnowledgeBase.open(kb.path).manifest["generation"] == gen and enc.calls == {"text": 0, "image": 0}


@pytest.mark.parametrize("fmt, data, problem", [
    ("coco", {"images": 5, "annotations": []}, "'images' must be a list"),
    ("coco", {"images": [], "annotations": {"a": 1}}, "'annotations' must be a list"),
    ("coco", {"images": [{"id": 1}], "annotations": []}, "images[0] needs 'id' and 'file_name'"),
    ("coco", {"images": [], "annotations": [3]}, "annotations[0] needs 'image_id' and 'caption'"),
    ("coco", {"images": [], "annotations": [{"image_id": 1, "caption": 7}]},
     "annotations[0]: 'caption' must be a string, got 7"),
    ("vqa", {"questions": "what?"}, "'questions' must be a list"),
    ("vqa", {"questions": [{"question": "what?"}]}, "questions[0] needs 'question_id', 'question' and"),
])
def test_a_coco_or_vqa_file_of_the_wrong_shape_is_an_input_error_before_writing(kb, enc, tmp_path, fmt, data,
                                                                               problem):
    src = tmp_path / "bad.json"
    src.write_text(json.dumps(data))
    gen = kb.manifest["generation"]
    with pytest.raises(InputError) as e:
        run(kb, src, enc, fmt=fmt)
    assert problem in str(e.value) and str(src) in str(e.value)
    assert KnowledgeBase.open(kb.path).manifest["generation"] == gen and enc.calls == {"text": 0, "image": 0}
