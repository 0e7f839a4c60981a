import numpy as np
import pytest
from PIL import Image

from ragsc.errors import InputError
from ragsc.eval import accuracy, bleu, psnr, recall_at_k, sentence_similarity, ssim


def test_bleu_values():
    b4 = bleu(["a red circle on white", "completely different words"],
              ["a red circle on white", "a red circle on white"])
    assert b4[0] == pytest.approx(1.0) and b4[1] == pytest.approx(0.0)
    b1 = bleu(["a red square"], ["a red circle"], max_order=1)
    assert b1[0] == pytest.approx(2 / 3, abs=1e-6)
    with pytest.raises(InputError, match="2 hypotheses but 1"):
        bleu(["a", "b"], ["a"])


def test_sentence_similarity_orders_meaning(embedded):
    s = sentence_similarity(["a kitten", "a rocket launch", ""], ["a cat", "a cat", "a cat"],
                            encoder=embedded)
    assert s[0] > s[1] and s[2] == 0.0 and s[0] <= 1.0001


def test_psnr_ssim():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    noisy = np.clip(img.astype(int) + rng.integers(-10, 11, img.shape), 0, 255).astype(np.uint8)
    p = psnr([Image.fromarray(noisy), img], [Image.fromarray(img), img])
    mse = ((noisy.astype(float) - img) ** 2).mean()
    assert p[0] == pytest.approx(10 * np.log10(255**2 / mse)) and np.isinf(p[1])
    s = ssim([noisy, img, np.full_like(img, 128)], [img, img, img])
    assert s[1] == pytest.approx(1.0) and 0 < s[0] < 1 and s[2] < s[0]
    with pytest.raises(InputError, match="differ in size"):
        psnr([img[:16]], [img])
    small = img[:4, :4]
    assert ssim([small], [small])[0] == pytest.approx(1.0)  # tiny images get a smaller window
    with pytest.raises(InputError, match="uint8"):
        ssim([img.astype(float)], [img])


def test_accuracy_and_recall():
    assert accuracy(["Red", "blue ", "no"], ["red", "blue", "yes"]).tolist() == [1.0, 1.0, 0.0]
    assert recall_at_k([[3, 1, 2], [5, 6, 7]], [1, 9], k=2).tolist() == [1.0, 0.0]
    assert recall_at_k([[3, 1, 2]], [{2, 8}], k=3).tolist() == [1.0]
    with pytest.raises(InputError):
        recall_at_k([[1]], [1], k=0)


def _noisy(img: np.ndarray, amount: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img.astype(int) + rng.integers(-amount, amount + 1, img.shape), 0, 255).astype(np.uint8)


def _smooth(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return (np.stack([x / w, y / h, (x * y) / (w * h)], -1) * 255).astype(np.uint8)


def test_ms_ssim_is_one_for_copies_and_falls_with_noise():
    from ragsc.eval.metrics import ms_ssim

    img = _smooth(180, 200)
    s = ms_ssim([img, _noisy(img, 10), _noisy(img, 60), Image.fromarray(img)], [img, img, img, img])
    assert s[0] == pytest.approx(1.0, abs=1e-6) and s[3] == pytest.approx(1.0, abs=1e-6)
    assert 0 < s[2] < s[1] < 1
    grey = img[:, :, 0]  # HxW arrays are scored too
    assert ms_ssim([_noisy(grey, 30)], [grey])[0] < 1 and ms_ssim([grey], [grey])[0] == pytest.approx(1.0)


@pytest.mark.parametrize(("side", "win"), [(161, 11), (200, 11), (100, 7), (64, 3), (48, 3), (33, 3)])
def test_ms_ssim_window_shrinks_for_small_photos(side, win):
    """Five scales with the largest odd window the photo's four downsamplings leave room for (11 at most)."""
    import torch
    from pytorch_msssim import ms_ssim as reference

    from ragsc.eval.metrics import ms_ssim

    img = _smooth(side, side + 7)
    noisy = _noisy(img, 40)
    x, y = (torch.from_numpy(v.astype(np.float32)).permute(2, 0, 1)[None] for v in (noisy, img))
    assert ms_ssim([noisy], [img])[0] == pytest.approx(float(reference(x, y, data_range=255, win_size=win)),
                                                       abs=1e-6)


def test_ms_ssim_of_tiny_photos_is_single_scale_ssim_or_nan():
    import torch
    from pytorch_msssim import ssim as reference

    from ragsc.eval.metrics import ms_ssim

    for side in (11, 20, 32):
        img = _smooth(side, 40)
        noisy = _noisy(img, 40)
        x, y = (torch.from_numpy(v.astype(np.float32)).permute(2, 0, 1)[None] for v in (noisy, img))
        assert ms_ssim([noisy], [img])[0] == pytest.approx(float(reference(x, y, data_range=255)), abs=1e-6)
    img = _smooth(10, 40)
    assert np.isnan(ms_ssim([img], [img])[0])
    with pytest.raises(InputError, match="differ in size"):
        ms_ssim([img[:, :20]], [img])
    with pytest.raises(InputError, match="2 hypotheses but 1"):
        ms_ssim([img, img], [img])
