"""The demo's example stage on the small default KBs (the full demo is `make demo`)."""

from ragsc.demo import DEMO_SENTENCES, examples


def test_examples_print_sentences_images_and_answers(multitask):
    lines = []
    examples(multitask, lines.append, lm=True, snr_db=20.0, sentence_snrs=(10.0, 20.0))
    out = "\n".join(lines)
    assert "sentences over AWGN on the token link (4 complex symbols per token + a 16-symbol header)" in out
    assert "decoded at 10 dB" in out and "decoded at 20 dB" in out
    for s in DEMO_SENTENCES:  # the demo's own sentences, decoded exactly at 20 dB: twice in the table
        assert out.count(s) >= 2, out
    assert "as embeddings (semantic-embedding baseline) at 20 dB, 48 complex symbols each" in out
    assert "decoded, RAG (fast)" in out and "decoded, no RAG (GRU)" in out
    # three easy-VQA test images with two questions each, answered with and without RAG
    assert out.count(" -> ") == 6


def test_photo_example_sets_a_real_photo_beside_heif_and_ldpc(multitask, tmp_path):
    from ragsc.demo import photo_example

    lines = []
    png = tmp_path / "photo.png"
    res = photo_example(multitask, lines.append, png, snrs=(10.0,))
    out = "\n".join(lines)
    assert "a real photo (451x300, scikit-image's 'chelsea')" in out and "HEIF + LDPC (best MCS)" in out
    assert png.is_file() and png.stat().st_size > 10_000
    (row,) = res["rows"]
    # its embedding's 48 symbols + the JSCC's (1/12 of 451 x 300 x 3, padded to 456 x 304) + a header
    assert row[0] == "10" and row[1] == 48 + 57 * 38 * 16 + 16
    jscc_psnr = float(row[2].split(" / ")[0])
    assert 15.0 < jscc_psnr < 60.0  # a photo came back, not a blank
    caption, answers = row[4], row[5].split(" / ")
    assert caption and len(answers) == 2 and answers[1] in ("yes", "no")  # the open describer's
