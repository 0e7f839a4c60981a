"""The demo's link + knowledge-base stage on a small setting (the full demo is `make demo`)."""

from ragsc.demo import link_and_retrieval


def test_semantic_link_and_kb_retrieval(embedded):
    rows = {(c, s): (a, d, b) for c, s, a, d, b in link_and_retrieval(embedded, 24, (-5.0, 10.0), 48)}
    analog_clean, digital_clean, bler_clean = rows[("awgn", 10.0)]
    assert analog_clean >= 0.9 and bler_clean == 0.0
    # below the LDPC threshold the digital path falls off its cliff; the analog link degrades gracefully
    analog_low, digital_low, bler_low = rows[("awgn", -5.0)]
    assert bler_low == 1.0 and digital_low < 0.2 and analog_low > 0.7
    assert rows[("rayleigh", 10.0)][0] >= rows[("rayleigh", -5.0)][0]
    # a second run reuses the KB without duplicating its captions
    again = link_and_retrieval(embedded, 24, (10.0,), 48)
    assert again[0][2] == analog_clean
