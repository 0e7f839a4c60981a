import pytest
import torch

from ragsc import InputError, SemanticTokens


def test_semantic_tokens_validates_shapes():
    t = SemanticTokens(torch.zeros(2, 4), "text", torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.bool))
    assert len(t) == 2 and t.dim == 4 and t.to("cpu").tokens.shape == (2, 3, 4)
    with pytest.raises(InputError, match=r"\[N, dim\]"):
        SemanticTokens(torch.zeros(4), "text")
    with pytest.raises(InputError, match="modality"):
        SemanticTokens(torch.zeros(1, 4), "audio")
    with pytest.raises(InputError, match="same N"):
        SemanticTokens(torch.zeros(2, 4), "image", torch.zeros(3, 1, 4))
    with pytest.raises(InputError, match="token_mask"):
        SemanticTokens(torch.zeros(2, 4), "image", torch.zeros(2, 1, 4), torch.ones(2, 2, dtype=torch.bool))


def test_semantic_tokens_modality_per_row():
    mixed = SemanticTokens(torch.zeros(3, 4), ["image", "text", "image"])
    assert mixed.modality == ("image", "text", "image") and mixed.modalities == ("image", "text", "image")
    assert mixed.select([1, 2]).modalities == ("text", "image") and mixed.select([0, 2]).modality == "image"
    same = SemanticTokens(torch.zeros(2, 4), ["text", "text"])
    assert same.modality == "text" and same.modalities == ("text", "text")  # a uniform batch keeps one label
    assert SemanticTokens(torch.zeros(2, 4), "image").modalities == ("image", "image")
    assert mixed.replace(torch.ones(3, 2), path="x").modalities == mixed.modalities
    with pytest.raises(InputError, match="2 entries for 3 rows"):
        SemanticTokens(torch.zeros(3, 4), ["image", "text"])
    with pytest.raises(InputError, match="'audio'"):
        SemanticTokens(torch.zeros(2, 4), ["image", "audio"])
