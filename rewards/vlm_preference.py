"""RL-VLM-F (Wang et al. 2024): preference labels from a vision-language model that compares two frames.

A frame labeler is any callable `(frame_a, frame_b, task_text) -> answer`, frames (H, W, 3) uint8, answering as
RL-VLM-F's prompt asks: 0 if the task is better achieved in frame_a, 1 if in frame_b, TIE (-1) if unsure or no
different (the strings "0", "1", "-1" and "tie" are accepted too, as a chat model would reply). A labeler may
also offer `label_batch(frames_a (N, H, W, 3), frames_b, task_text) -> answers (N,)`, which is used when present.

`CLIPFrameLabeler` is the built-in one: the frame with the higher CLIP reward for the task text (VLM-RM, see
`rewards/clip.py`) wins; a tie when the two are within `tie_margin`. `VLMPreferenceTeacher` turns the answers into
Bradley–Terry labels (1: segment a preferred, 0.5: tie) for pairs of segments by comparing each segment's last
frame; with segment_length=1 that is RL-VLM-F's single-image setting. The labels train the `preference` model
(rewards/preference.py) on states, online (rewards/online_preference.py) or offline.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from rewards.clip import CLIPReward, goal_baseline_reward

TIE = -1
FrameLabeler = Callable[[np.ndarray, np.ndarray, str], Any]
_LABELS = {0: 1.0, 1: 0.0, TIE: 0.5}  # answer -> P(a ≻ b)


def answer_to_label(answer: Any) -> float:
    """A labeler's answer (0: frame_a better, 1: frame_b better, -1 / "tie": tie) -> label 1.0 / 0.0 / 0.5."""
    if isinstance(answer, str):
        text = answer.strip().lower()
        answer = TIE if text == "tie" else text
    try:
        return _LABELS[int(answer)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"a frame labeler answered {answer!r}; expected 0, 1 or {TIE} (tie)") from None


def label_frame_pairs(labeler: FrameLabeler, frames_a: Any, frames_b: Any, task_text: str) -> torch.Tensor:
    """Labels (N,) in {0, 0.5, 1} (1: a preferred) for frame pairs (N, H, W, 3), batched if the labeler can."""
    batch = getattr(labeler, "label_batch", None)
    if batch is not None:
        answers = batch(frames_a, frames_b, task_text)
    else:
        frames_a, frames_b = np.asarray(frames_a), np.asarray(frames_b)
        answers = [labeler(a, b, task_text) for a, b in zip(frames_a, frames_b)]
    return torch.tensor([answer_to_label(a) for a in answers], dtype=torch.float32)


class CLIPFrameLabeler:
    """Prefers the frame with the higher CLIP reward for the task text; ties within `tie_margin`.

    The CLIP reward's baseline prompts and α apply; the task text replaces its goal prompts (embeddings cached).
    """

    def __init__(self, clip: CLIPReward, tie_margin: float = 0.0) -> None:
        self.clip = clip
        self.tie_margin = tie_margin
        self.goals: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def scores(self, frames: Any, task_text: str) -> torch.Tensor:
        """CLIP reward (B,) of uint8 frames (B, H, W, 3) for the task text."""
        if task_text not in self.goals:
            self.goals[task_text] = self.clip.embed_text([task_text])[0]
        frames = torch.as_tensor(np.asarray(frames), dtype=torch.uint8, device=self.clip.device)
        x = self.clip.embed_frames(frames)
        return goal_baseline_reward(x, self.goals[task_text], self.clip.baseline, self.clip.alpha)

    def label_batch(self, frames_a: Any, frames_b: Any, task_text: str) -> list[int]:
        """Answers (N,): 0 (a better), 1 (b better) or TIE."""
        gap = (self.scores(frames_a, task_text) - self.scores(frames_b, task_text)).cpu()
        return [TIE if abs(g) <= self.tie_margin else (0 if g > 0 else 1) for g in gap.tolist()]

    def __call__(self, frame_a: np.ndarray, frame_b: np.ndarray, task_text: str) -> int:
        return self.label_batch(np.asarray(frame_a)[None], np.asarray(frame_b)[None], task_text)[0]


class VLMPreferenceTeacher:
    """Labels segment pairs by asking a frame labeler about each segment's last frame (segments["frames"])."""

    needs = frozenset({"frames"})

    def __init__(self, labeler: FrameLabeler, task_text: str) -> None:
        self.labeler = labeler
        self.task_text = task_text

    def __call__(self, segments_a: dict[str, Any], segments_b: dict[str, Any]) -> torch.Tensor:
        """Labels (N,) for segments with frames (N, T, H, W, 3)."""
        frames_a, frames_b = (torch.as_tensor(s["frames"])[:, -1].cpu().numpy() for s in (segments_a, segments_b))
        return label_frame_pairs(self.labeler, frames_a, frames_b, self.task_text)
