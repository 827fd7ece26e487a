"""TD InfoNCE (Zheng et al. 2024): Contrastive RL's critic learnt by temporal differences.

Monte-Carlo InfoNCE (agents/crl.py) takes its positive goal from the same trajectory's future, so it can only
score futures a single trajectory reached. TD InfoNCE's positive is the next state, plus, with weight `discount`,
the target critic's own prediction of the next state's future: the critic can chain pieces of different
trajectories (stitching). The critic conditions on the commanded goal, phi(s, g, a), since the future of a
goal-conditioned policy depends on its goal. Networks, buffer and actor are crl's; this module is the loss.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F


def td_infonce_loss(next_logits: torch.Tensor, future_logits: torch.Tensor, target_future_logits: torch.Tensor,
                    discount: float, has_next: torch.Tensor) -> torch.Tensor:
    """The TD InfoNCE loss on (B, B) logits.

    next_logits: f(s_i, a_i, g_i, s'_j), the positive of row i its own next state; future_logits: f(s_i, a_i, g_i, h_j)
    over candidate goals h_j; target_future_logits: f_target(s'_i, a'_i, g_i, h_j) with a' ~ pi(. | s'_i, g_i), whose
    softmax over j is the soft label of row i; has_next (B,) masks rows without a stored next observation out of
    the bootstrapped term.
    """
    labels = torch.arange(next_logits.shape[0], device=next_logits.device)
    next_term = F.cross_entropy(next_logits, labels)
    weights = torch.softmax(target_future_logits, dim=1).detach()
    future_term = -(weights * torch.log_softmax(future_logits, dim=1)).sum(1)
    future_term = (future_term * has_next).sum() / has_next.sum().clamp_min(1.0)
    return (1.0 - discount) * next_term + discount * future_term


def td_infonce_critic_loss(critic: Any, target_critic: Any, actor: Any, batch: dict[str, torch.Tensor],
                           logits: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], discount: float,
                           logsumexp_penalty: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TD InfoNCE on a replay batch whose relabelled goals are both the conditioning goals g_i and the candidate
    goals h_j; `logits(phi (B, D), psi (B, D))` -> (B, B) is the critic's energy (crl's critic_logits). Returns the
    (B, B) logits over candidates, the loss (with crl's logsumexp penalty) and psi(g) (B, D)."""
    obs, action, goal = batch["observation"], batch["action"], batch["goal"]
    phi = critic.sa_encoder(torch.cat([obs, goal, action], -1))
    goal_repr = critic.goal_encoder(goal)
    next_logits = logits(phi, critic.goal_encoder(batch["next_goal"]))
    future_logits = logits(phi, goal_repr)
    with torch.no_grad():
        next_state = torch.cat([batch["next_observation"], goal], -1)
        next_action, _ = actor(next_state)
        target_phi = target_critic.sa_encoder(torch.cat([next_state, next_action], -1))
        target_logits = logits(target_phi, target_critic.goal_encoder(goal))
    loss = td_infonce_loss(next_logits, future_logits, target_logits, discount, batch["has_next"])
    loss = loss + logsumexp_penalty * torch.logsumexp(future_logits, dim=1).pow(2).mean()
    return future_logits, loss, goal_repr
