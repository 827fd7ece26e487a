"""PPO's policy side: the observation front end and the actor-critic networks, for vector, pixel and text inputs.

The front end (`PolicyInputs`) is not learned: it turns a batched observation into named input tensors that the
rollout stores, so a minibatch replays exactly what the policy saw when it acted:

    vector          (N, D) float     Box entries, flattened, running mean/var normalised and clipped
    pixels          (N, C, H, W) u8  the `pixels` frame stack (and a `goal_image` as extra channels)
    context         (N, E) float     sentence embedding of `text` without the option lines (text policies)
    options         (N, K, E) float  sentence embedding of each line of `options`      (text policies)
    option_vector   (N, K, F) float  Box entries with one row per option, normalised   (text policies)

`ActorCritic` reads them: a CNN (CURL's encoder) on pixels, concatenated with the vector (and the context
embedding); an MLP actor and an MLP critic on top. A text policy scores every candidate option with one shared
MLP over [context features, option embedding, option row] (Discrete(K) actions: option i is the i-th line).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from agents.base import TensorObs
from agents.encoders import PIXEL_KEY, PixelEncoder, pixel_shape
from agents.networks import mlp
from envs.text_embedding import SentenceEmbedder, load_sentence_encoder

GOAL_IMAGE_KEY = "goal_image"
TEXT_KEYS = ("text", "options")  # the text games' Text entries a text policy reads


def context_text(text: str, option_lines: list[str]) -> str:
    """The `text` entry without its option lines: they are embedded one by one, and a shorter text encodes faster."""
    options = set(option_lines)
    return "\n".join(line for line in str(text).split("\n") if line not in options)


def is_image(space: spaces.Space) -> bool:
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
            raise ValueError(f"ppo needs Box or Dict observations, got {space}")

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
            raise ValueError(f"ppo found nothing to read in {space}: no Box, image or (with text_encoder) text entry")
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
            inputs["context"] = self.embed(contexts).to(device)
            inputs["options"] = self.embed([line for lines in options for line in lines]).to(device).view(
                len(options), self.num_options, -1)
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


# --- networks -----------------------------------------------------------------------------------------------
def orthogonal_init(net: nn.Sequential, out_gain: float) -> nn.Sequential:
    """CleanRL's layer_init: orthogonal weights (gain sqrt 2, `out_gain` on the last layer), zero biases."""
    linears = [m for m in net if isinstance(m, nn.Linear)]
    for layer in linears:
        nn.init.orthogonal_(layer.weight, out_gain if layer is linears[-1] else math.sqrt(2))
        nn.init.zeros_(layer.bias)
    return net


class Tanh(nn.Module):
    """tanh(x) computed as 2 sigmoid(2x) - 1: the same function (to float rounding), but torch's CPU tanh kernel
    is several times slower than sigmoid and was the largest single cost of an update."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(2 * x) * 2 - 1


class ActorCritic(nn.Module):
    """Separate tanh MLPs for the actor and the critic over shared features of the inputs.

    Features: [CNN(pixels), vector, context] (whichever exist); the CNN is shared by actor and critic, as in
    CleanRL's Atari PPO. Box actions: diagonal Gaussian with a state-independent log-std; Discrete: categorical,
    whose logits come from the actor MLP or, for text policies, from scoring each option.
    The log-probability, entropy and sampling are written in closed form: on CPU, building `torch.distributions`
    objects (with their argument checks) per minibatch cost more than the small networks themselves.
    """

    def __init__(self, shapes: dict[str, tuple[tuple[int, ...], torch.dtype]], action_space: spaces.Space,
                 hidden: list[int], init_log_std: float, feature_dim: int = 50, num_conv_layers: int = 4,
                 num_filters: int = 32) -> None:
        super().__init__()
        self.continuous = isinstance(action_space, spaces.Box)
        out_dim = action_space.shape[0] if self.continuous else int(action_space.n)
        self.pixel_encoder: PixelEncoder | None = None
        feature_dim_total = 0
        if "pixels" in shapes:
            (channels, height, width), _ = shapes["pixels"]
            if height != width:
                raise ValueError(f"ppo's pixel encoder needs square frames, got {height}x{width}")
            self.pixel_encoder = PixelEncoder(channels, height, feature_dim, num_conv_layers, num_filters)
            feature_dim_total += feature_dim
        for name in ("vector", "context"):
            if name in shapes:
                feature_dim_total += shapes[name][0][0]
        self.scores_options = "options" in shapes
        self.critic = orthogonal_init(mlp(feature_dim_total, hidden, 1, activation=Tanh), 1.0)
        if self.scores_options:
            option_dim = shapes["options"][0][1] + (shapes["option_vector"][0][1] if "option_vector" in shapes else 0)
            self.actor = orthogonal_init(mlp(feature_dim_total + option_dim, hidden, 1, activation=Tanh), 0.01)
        else:
            self.actor = orthogonal_init(mlp(feature_dim_total, hidden, out_dim, activation=Tanh), 0.01)
        if self.continuous:
            self.actor_log_std = nn.Parameter(torch.full((out_dim,), float(init_log_std)))

    def features(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Inputs with leading shape (B,) -> shared features (B, F)."""
        parts = []
        if self.pixel_encoder is not None:
            parts.append(self.pixel_encoder(inputs["pixels"]))
        parts += [inputs[name] for name in ("vector", "context") if name in inputs]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def actor_out(self, features: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Gaussian means (B, A) or logits (B, K); a text policy scores option k from [features, option k]."""
        if not self.scores_options:
            return self.actor(features)
        options = inputs["options"]
        if "option_vector" in inputs:
            options = torch.cat([options, inputs["option_vector"]], dim=2)
        context = features.unsqueeze(1).expand(-1, options.shape[1], -1)
        return self.actor(torch.cat([context, options], dim=2)).squeeze(-1)

    def forward(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (B, ...) -> actor output (B, A) (Gaussian means or categorical logits) and V (B,)."""
        features = self.features(inputs)
        return self.actor_out(features, inputs), self.critic(features).squeeze(-1)

    def value(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Inputs (B, ...) -> V (B,)."""
        return self.critic(self.features(inputs)).squeeze(-1)

    def policy_out(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Inputs (B, ...) -> actor output only (acting)."""
        return self.actor_out(self.features(inputs), inputs)

    def log_prob_entropy(self, out: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Actor output (B, A) and actions (B, A) float or (B,) long -> log pi(a|x) (B,) and the mean entropy ()."""
        if self.continuous:
            log_std = self.actor_log_std
            # N(mean, exp(log_std)^2) summed over action dims; the entropy does not depend on x.
            log_norm = log_std.sum() + 0.5 * out.shape[-1] * math.log(2 * math.pi)
            log_prob = -0.5 * ((action - out) * (-log_std).exp()).pow(2).sum(-1) - log_norm
            return log_prob, log_norm + 0.5 * out.shape[-1]
        log_p = out.log_softmax(-1)
        entropy = -(log_p.exp() * log_p).sum(-1).mean()
        return log_p.gather(-1, action.unsqueeze(-1)).squeeze(-1), entropy

    def sample(self, out: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actor output (B, A) -> actions (B, A) float or (B,) long; the mean / argmax when deterministic."""
        if self.continuous:
            return out if deterministic else out + self.actor_log_std.exp() * torch.randn_like(out)
        if deterministic:
            return out.argmax(-1)
        return torch.multinomial(out.softmax(-1), 1).squeeze(-1)
