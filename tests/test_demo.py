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
