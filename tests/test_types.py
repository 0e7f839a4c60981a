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
