import pytest
import torch

from envs.text_embedding import SentenceEmbedder, load_sentence_encoder

TEXTS = ["Move the red block to the left.", "The arm is far from the goal.", "Open the drawer.", "A cat sleeps."]


@pytest.fixture(scope="module")
def encoder():
    return load_sentence_encoder(device="cpu")


def test_embeddings_are_unit_vectors_and_similar_texts_are_closer(encoder):
    embed = SentenceEmbedder(encoder)
    e = embed(["Book the cheapest flight.", "Choose the least expensive flight.", "The cat sleeps on the sofa."])
    assert e.shape == (3, embed.dim) and embed.dim == 384
    torch.testing.assert_close(e.norm(dim=1), torch.ones(3))
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2


def test_embeddings_are_cached_lru(encoder, monkeypatch):
    embed = SentenceEmbedder(encoder, cache_size=3)
    encoded = []
    original = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda texts, **kwargs: encoded.append(list(texts)) or original(texts, **kwargs))
    first = embed([TEXTS[0], TEXTS[1], TEXTS[0]])
    assert encoded == [[TEXTS[0], TEXTS[1]]]  # each new text once, in one call
    again = embed([TEXTS[1], TEXTS[0]])
    assert len(encoded) == 1  # all cached: same text, same embedding, no encoder call
    torch.testing.assert_close(again, first[[1, 0]])
    embed([TEXTS[2], TEXTS[3]])  # over the size: the least recently used (TEXTS[1]) goes
    assert list(embed.cache) == [TEXTS[0], TEXTS[2], TEXTS[3]]


def test_unknown_encoder_names_the_choices():
    with pytest.raises(ValueError, match="minilm"):
        load_sentence_encoder("no-such-model")
