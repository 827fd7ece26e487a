"""Policy inputs shared by the on-policy (PPO) and preference (CPL) agents: a non-learned front end that turns
a batched observation into named input tensors, and the option scorer of text policies.

    vector          (N, D) float     Box entries, flattened, standardised by running statistics and clipped
    pixels          (N, C, H, W) u8  the `pixels` frame stack (and a `goal_image` as extra channels)
    context         (N, E) float     sentence embedding of `text` without the option lines (text policies)
    options         (N, K, E) float  sentence embedding of each line of `options`      (text policies)
    option_vector   (N, K, F) float  Box entries with one row per option, standardised (text policies)

A text policy (Discrete(K) actions: option i is the i-th line of `options`) scores every option with one shared
MLP over [context features, option embedding, option row], so it is equivariant to the order of the options.
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from agents.base import TensorObs
from agents.encoders import PIXEL_KEY, pixel_shape
from envs.text_embedding import SentenceEmbedder, load_sentence_encoder

GOAL_IMAGE_KEY = "goal_image"
TEXT_KEYS = ("text", "options")  # the text games' Text entries a text policy reads


def context_text(text: str, option_lines: list[str]) -> str:
    """The `text` entry without its option lines: they are embedded one by one, and a shorter text encodes faster."""
    options = set(option_lines)
    return "\n".join(line for line in str(text).split("\n") if line not in options)


def is_image(space: spaces.Space) -> bool:
    """Whether `space` is a uint8 channels-first image Box (or a Dict with a `pixels` entry)."""
    return pixel_shape(space) is not None


def policy_input_keys(space: spaces.Dict) -> list[str]:
    """Vector entries the policy sees: GoalEnv `observation` (when not replaced by pixels) + `desired_goal`, else
    every non-image Box, sorted. Text entries are skipped here (text games also expose numeric views)."""
    if "desired_goal" in space.spaces:
        return [k for k in ("observation", "desired_goal") if k in space.spaces]
    return sorted(k for k, s in space.spaces.items() if isinstance(s, spaces.Box) and not is_image(s))


class RunningMeanStd(nn.Module):
    """Running mean and variance of (B, D) batches (parallel update of Chan et al.); buffers, so they are saved."""

    def __init__(self, dim: int, epsilon: float = 1e-4) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.tensor(epsilon))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Fold a batch x (B, D) into the statistics."""
        n = x.shape[0]
        batch_mean, batch_var = x.mean(0), x.var(0, unbiased=False)
        delta, total = batch_mean - self.mean, self.count + n
        m2 = self.var * self.count + batch_var * n + delta.pow(2) * self.count * n / total
        self.mean += delta * n / total
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def normalize(self, x: torch.Tensor, clip: float) -> torch.Tensor:
        """`x` (B, D) standardised by the running statistics and clipped to [-clip, clip]."""
        return ((x - self.mean) / (self.var + 1e-8).sqrt()).clamp(-clip, clip)


class PolicyInputs(nn.Module):
    """Non-learned front end: TensorObs (leaves (N, ...)) -> {input name: tensor (N, ...)} (see the module doc).

    `text_encoder` (a sentence-transformers name, e.g. `minilm`) turns on the text policy; it needs Discrete(K)
    actions and `text` / `options` entries whose options have K lines. Only the running statistics are state.
    """

    def __init__(self, space: spaces.Space, action_space: spaces.Space, normalize: bool, clip: float,
                 text_encoder: str | None = None) -> None:
        super().__init__()
        self.normalize_obs, self.clip = normalize, clip
        self.shapes: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
        self.vector_keys: list[str] = []
        self.option_keys: list[str] = []
        self.pixel_keys: list[str] = []
        self.embed: SentenceEmbedder | None = None
        if isinstance(space, spaces.Box) and is_image(space):
            self.pixel_keys = [""]
        elif isinstance(space, spaces.Box):
            self.vector_keys = [""]
        elif isinstance(space, spaces.Dict):
            if is_image(space.spaces.get(PIXEL_KEY)):
                self.pixel_keys = [k for k in (PIXEL_KEY, GOAL_IMAGE_KEY) if k in space.spaces]
            self.vector_keys = policy_input_keys(space)
        else:
            raise ValueError(f"the policy needs Box or Dict observations, got {space}")

        if text_encoder is not None:
            self._init_text(space, action_space, text_encoder)
        if self.pixel_keys:
            leaf = lambda k: space if k == "" else space[k]  # noqa: E731
            channels = sum(leaf(k).shape[0] for k in self.pixel_keys)
            self.shapes["pixels"] = ((channels, *leaf(self.pixel_keys[0]).shape[1:]), torch.uint8)
        leaf_dim = lambda k: int(np.prod((space if k == "" else space[k]).shape))  # noqa: E731
        vector_dim = sum(leaf_dim(k) for k in self.vector_keys)
        if vector_dim:
            self.shapes["vector"] = ((vector_dim,), torch.float32)
        if not self.shapes:
            raise ValueError(f"the policy found nothing to read in {space}: no Box, image or (with text_encoder) text entry")
        self.vector_stats = RunningMeanStd(vector_dim)
        if self.option_keys:
            self.option_stats = RunningMeanStd(self.shapes["option_vector"][0][1])

    def _init_text(self, space: spaces.Space, action_space: spaces.Space, text_encoder: str) -> None:
        if not isinstance(space, spaces.Dict) or not all(isinstance(space.spaces.get(k), spaces.Text) for k in TEXT_KEYS):
            raise ValueError(f"text_encoder={text_encoder!r} needs Text entries {TEXT_KEYS}; the observation space is {space}")
        if not isinstance(action_space, spaces.Discrete):
            raise ValueError(f"text_encoder={text_encoder!r} needs Discrete actions (one per option), got {action_space}")
        self.num_options = int(action_space.n)
        self.embed = SentenceEmbedder(load_sentence_encoder(text_encoder))
        # Box entries with one row per option go beside each option's embedding; the rest stay in the vector.
        self.option_keys = [k for k in self.vector_keys if len(space[k].shape) == 2 and space[k].shape[0] == self.num_options]
        self.vector_keys = [k for k in self.vector_keys if k not in self.option_keys]
        self.shapes["context"] = ((self.embed.dim,), torch.float32)
        self.shapes["options"] = ((self.num_options, self.embed.dim), torch.float32)
        if self.option_keys:
            width = sum(space[k].shape[1] for k in self.option_keys)
            self.shapes["option_vector"] = ((self.num_options, width), torch.float32)

    def _leaf(self, obs: TensorObs, key: str) -> torch.Tensor:
        return obs if key == "" else obs[key]  # type: ignore[index]

    def _vector(self, obs: TensorObs) -> torch.Tensor:
        return torch.cat([self._leaf(obs, k).flatten(1) for k in self.vector_keys], dim=1)

    def _option_vector(self, obs: TensorObs) -> torch.Tensor:
        return torch.cat([obs[k] for k in self.option_keys], dim=2)  # type: ignore[index]

    def raw(self, obs: TensorObs) -> dict[str, torch.Tensor]:
        """The inputs before normalisation (what the rollout stores): TensorObs -> {name: (N, ...)}."""
        inputs: dict[str, torch.Tensor] = {}
        if "vector" in self.shapes:
            inputs["vector"] = self._vector(obs)
        if self.pixel_keys:
            images = torch.cat([self._leaf(obs, k) for k in self.pixel_keys], dim=1)
            inputs["pixels"] = images if images.dtype == torch.uint8 else images.round().to(torch.uint8)
        if self.embed is not None:
            device = self.vector_stats.mean.device
            options = [self.option_lines(text) for text in obs["options"]]  # type: ignore[index]
            contexts = [context_text(text, lines) for text, lines in zip(obs["text"], options)]  # type: ignore[index]
            embedded = self.embed(contexts + [line for lines in options for line in lines]).to(device)  # one call
            n = len(contexts)
            inputs["context"], inputs["options"] = embedded[:n], embedded[n:].view(n, self.num_options, -1)
        if self.option_keys:
            inputs["option_vector"] = self._option_vector(obs)
        return inputs

    def normalize(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Raw inputs with any leading dims -> the policy's inputs: `vector` and `option_vector` standardised by
        the running statistics and clipped; the rest unchanged."""
        if not self.normalize_obs:
            return inputs
        out = dict(inputs)
        if "vector" in inputs:
            out["vector"] = self.vector_stats.normalize(inputs["vector"], self.clip)
        if "option_vector" in inputs:
            out["option_vector"] = self.option_stats.normalize(inputs["option_vector"], self.clip)
        return out

    def forward(self, obs: TensorObs) -> dict[str, torch.Tensor]:
        """A batched observation (leaves (N, ...)) -> the policy's named inputs, standardised (module doc)."""
        return self.normalize(self.raw(obs))

    def option_lines(self, options: str) -> list[str]:
        """The K candidate texts of an `options` entry, one per line."""
        lines = [line for line in str(options).split("\n") if line.strip()]
        if len(lines) != self.num_options:
            raise ValueError(f"expected {self.num_options} option lines (one per action), got {len(lines)}: {options!r}")
        return lines

    @torch.no_grad()
    def update_stats(self, inputs: dict[str, torch.Tensor]) -> None:
        """Fold raw inputs (any leading dims, e.g. a whole (T, N, ...) rollout) into the running statistics."""
        if not self.normalize_obs:
            return
        if "vector" in inputs:
            self.vector_stats.update(inputs["vector"].flatten(0, -2))
        if "option_vector" in inputs:
            self.option_stats.update(inputs["option_vector"].flatten(0, -2))


def score_options(scorer: nn.Module, features: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits (B, K) = scorer([features (B, F), option k (B, K, E [+ F_opt])]) for every option k."""
    options = inputs["options"]
    if "option_vector" in inputs:
        options = torch.cat([options, inputs["option_vector"]], dim=2)
    context = features.unsqueeze(1).expand(-1, options.shape[1], -1)
    return scorer(torch.cat([context, options], dim=2)).squeeze(-1)


def option_dim(shapes: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> int:
    """Width of one option's input to `score_options`: its embedding plus its Box row."""
    return shapes["options"][0][1] + (shapes["option_vector"][0][1] if "option_vector" in shapes else 0)

