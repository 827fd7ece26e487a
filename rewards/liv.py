"""Losses for training a CLIP reward on an env's own frames: CLIP's contrastive loss and the LIV objective.

CLIP (Radford et al. 2021): symmetric InfoNCE between the image and text embeddings of a batch of (frame,
caption) pairs. Env captions repeat (nearby states read alike), so pairs with the same caption count as
positives of one another (a multi-positive target) rather than as false negatives.

LIV (Ma et al. 2023, "LIV: Language-Image Representations and Rewards for Robotic Control") trains the
embedding φ so that V(o; g) = cos(φ(o), φ(g)) / (1 − γ) is a goal-conditioned value, with VIP's dual objective
    L(φ) = (1 − γ) E[−V(o_0; g)] + log E_{(o_t, o_{t+1})}[exp(−(r + γ V(o_{t+1}; g) − V(o_t; g)))]
(r = 0 at the goal, −1 elsewhere), applied to two goals per trajectory: its final frame and its task text;
a CLIP loss between final frames and task texts keeps the two modalities aligned.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPSILON = 1e-8


def clip_contrastive_loss(
    image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor | float, caption_ids: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE over B pairs; image, text (B, D) (normalised here), caption_ids (B,) marks equal captions.

    Without caption_ids each row's only positive is its own pair (CLIP's loss exactly).
    """
    image, text = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
    logits = logit_scale * image @ text.T  # (B, B)
    if caption_ids is None:
        targets = torch.eye(len(image), device=image.device)
    else:
        targets = (caption_ids[:, None] == caption_ids[None, :]).float()
    targets = targets / targets.sum(1, keepdim=True)  # symmetric positives: the same targets serve both sides
    image_to_text = -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()
    text_to_image = -(targets * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    return (image_to_text + text_to_image) / 2


def vip_loss(
    initial: torch.Tensor,
    current: torch.Tensor,
    following: torch.Tensor,
    goal: torch.Tensor,
    reward: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """VIP / LIV value objective for embeddings (B, D) of o_0, o_t, o_{t+1} and the goal g; reward (B,) of step t."""
    v0, vt, vt1 = (F.cosine_similarity(x, goal, dim=-1) / (1.0 - gamma) for x in (initial, current, following))
    return (1.0 - gamma) * -v0.mean() + torch.log(EPSILON + torch.exp(-(reward + gamma * vt1 - vt)).mean())


def liv_loss(
    initial: torch.Tensor,
    current: torch.Tensor,
    following: torch.Tensor,
    final: torch.Tensor,
    task_text: torch.Tensor,
    reward: torch.Tensor,
    gamma: float,
    logit_scale: torch.Tensor | float,
    task_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """LIV: VIP with the final frame as goal + VIP with the task text as goal + CLIP(final frame, task text).

    Image embeddings (B, D) of o_0, o_t, o_{t+1}, o_T per trajectory; task_text (B, D); reward (B,) of step t.
    """
    return (
        vip_loss(initial, current, following, final, reward, gamma)
        + vip_loss(initial, current, following, task_text, reward, gamma)
        + clip_contrastive_loss(final, task_text, logit_scale, task_ids)
    )
