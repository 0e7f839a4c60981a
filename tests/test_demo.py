"""The demo's example stage on the small default KBs (the full demo is `make demo`)."""

from ragsc.demo import examples


def test_examples_print_sentences_images_and_answers(multitask):
    lines = []
    examples(multitask, lines.append, lm=False, snr_db=20.0)
    out = "\n".join(lines)
    assert "sentences over AWGN at 20 dB, 48 complex symbols each" in out
    assert "decoded, RAG (fast)" in out and "decoded, no RAG (GRU)" in out
    # three easy-VQA test images with two questions each, answered with and without RAG
    assert out.count(" -> ") == 6
