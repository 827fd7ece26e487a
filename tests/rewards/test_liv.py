"""CLIP contrastive loss and the LIV objective on hand-built embeddings."""

import math

import pytest
import torch
import torch.nn.functional as F

from rewards.liv import clip_contrastive_loss, liv_loss, vip_loss


def test_clip_loss_on_a_hand_built_batch():
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # normalised inside
    # logits = s * I: each row's softmax puts e^s / (e^s + 1) on its own pair
    loss = clip_contrastive_loss(image, text, logit_scale=2.0)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-2.0)), rel=1e-6)
    # open_clip's formula: mean of the two cross-entropies with arange labels
    gen = torch.Generator().manual_seed(0)
    image, text = torch.randn(5, 8, generator=gen), torch.randn(5, 8, generator=gen)
    logits = 3.0 * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T
    labels = torch.arange(5)
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    torch.testing.assert_close(clip_contrastive_loss(image, text, 3.0), expected)


def test_equal_captions_are_positives_of_one_another():
    # pairs 0 and 1 share a caption: swapping their texts changes nothing with caption ids, but does without
    gen = torch.Generator().manual_seed(0)
    image, text = torch.randn(3, 4, generator=gen), torch.randn(3, 4, generator=gen)
    swapped = text[[1, 0, 2]]
    ids = torch.tensor([0, 0, 1])
    torch.testing.assert_close(clip_contrastive_loss(image, text, 4.0, ids), clip_contrastive_loss(image, swapped, 4.0, ids))
    assert not torch.allclose(clip_contrastive_loss(image, text, 4.0), clip_contrastive_loss(image, swapped, 4.0))
    # all-distinct ids are plain CLIP
    torch.testing.assert_close(clip_contrastive_loss(image, text, 4.0, torch.arange(3)), clip_contrastive_loss(image, text, 4.0))


def test_vip_loss_known_value():
    # unit vectors at fixed cosines to the goal; gamma = 0.5 so V = 2 cos
    goal = torch.tensor([[1.0, 0.0]])
    at = lambda c: torch.tensor([[c, math.sqrt(1 - c * c)]])  # noqa: E731
    loss = vip_loss(at(0.0), at(0.5), at(0.8), goal, torch.tensor([-1.0]), gamma=0.5)
    v0, vt, vt1 = 0.0, 1.0, 1.6
    expected = 0.5 * -v0 + math.log(1e-8 + math.exp(-(-1.0 + 0.5 * vt1 - vt)))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_vip_loss_prefers_embeddings_that_approach_the_goal():
    goal = torch.tensor([[1.0, 0.0]])
    at = lambda c: torch.tensor([[c, math.sqrt(1 - c * c)]])  # noqa: E731
    approaching = vip_loss(at(0.0), at(0.3), at(0.6), goal, torch.tensor([-1.0]), 0.9)
    receding = vip_loss(at(0.0), at(0.6), at(0.3), goal, torch.tensor([-1.0]), 0.9)
    assert approaching < receding


def test_liv_loss_is_the_sum_of_its_terms_and_has_gradients():
    gen = torch.Generator().manual_seed(1)
    e0, et, et1, eg, text = (torch.randn(4, 6, generator=gen, requires_grad=True) for _ in range(5))
    reward = torch.tensor([-1.0, -1.0, 0.0, -1.0])
    total = liv_loss(e0, et, et1, eg, text, reward, 0.98, 5.0)
    expected = vip_loss(e0, et, et1, eg, reward, 0.98) + vip_loss(e0, et, et1, text, reward, 0.98) + clip_contrastive_loss(eg, text, 5.0)
    torch.testing.assert_close(total, expected)
    total.backward()
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in (e0, et, et1, eg, text))
