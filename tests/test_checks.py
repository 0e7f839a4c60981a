"""ragsc.checks: item sizes against the Limits, and components' numeric settings."""

import pytest

from ragsc import checks
from ragsc.config import Limits
from ragsc.errors import ConfigError, InputError


def test_integer_settings_refuse_what_is_not_an_integer_in_range():
    assert checks.integer(3, "beam") == 3 and checks.integer(2, "n", 2, 2) == 2
    for bad in (0, 2.5, 4.0, float("nan"), float("inf"), True, "4", None):
        with pytest.raises(ConfigError, match=f"beam must be an integer >= 1, got {bad!r}"):
            checks.integer(bad, "beam")
    with pytest.raises(ConfigError, match=r"bits must be an integer in \[9, 48\], got 64"):
        checks.integer(64, "bits", 9, 48)


def test_real_settings_refuse_nan_inf_and_values_out_of_bounds():
    assert checks.real(0, "w", 0.0) == 0.0 and checks.real(0.5, "p", 0.0, 1.0, open_lo=True) == 0.5
    for bad in (float("nan"), float("inf"), -float("inf"), "1.0", None, True):
        with pytest.raises(ConfigError, match=f"w must be a finite number, got {bad!r}"):
            checks.real(bad, "w")
    with pytest.raises(ConfigError, match=r"p must be a finite number > 0.0 and < 1.0, got 1.0"):
        checks.real(1.0, "p", 0.0, 1.0, open_lo=True, open_hi=True)
    with pytest.raises(ConfigError, match=r"w must be a finite number >= 0.0, got -0.1"):
        checks.real(-0.1, "w", 0.0)


def test_size_limits_name_the_item_its_size_and_the_limit():
    limits = Limits(text_chars=4, text_tokens=10, image_pixels=12, batch_items=2, batch_tokens=20)
    checks.text_chars("abcd", 0, limits)
    checks.text_tokens(10, 0, limits)
    checks.image_pixels((3, 4), 0, limits)
    checks.batch_items(2, limits)
    checks.batch_tokens([10, 10], [0, 3], limits)
    checks.questions(["a?"] * 16, 0, limits)
    with pytest.raises(InputError, match=r"item 5: a text of 5 characters, more than the limit of 4 "
                                         r"\(limits.text_chars\)"):
        checks.text_chars("abcde", 5, limits)
    with pytest.raises(InputError, match=r"item 1: a sentence of 11 tokens, more than the limit of 10 "
                                         r"\(limits.text_tokens\)"):
        checks.text_tokens(11, 1, limits)
    with pytest.raises(InputError, match=r"image 2: a.png: an image of 5 x 3 = 15 pixels, more than the "
                                         r"limit of 12 \(limits.image_pixels\)"):
        checks.image_pixels((5, 3), 2, limits, "a.png: ", "image")
    with pytest.raises(InputError, match=r"item 2: a batch of 3 items, more than the limit of 2 "
                                         r"\(limits.batch_items\)"):
        checks.batch_items(3, limits)
    # the sentences are rows 0, 3 and 4 of the batch: the second takes the total over the limit
    with pytest.raises(InputError, match=r"item 3: with it the batch's sentences have 21 tokens "
                                         r"\(26 in all\), more than the limit of 20 \(limits.batch_tokens\)"):
        checks.batch_tokens([10, 11, 5], [0, 3, 4], limits)
