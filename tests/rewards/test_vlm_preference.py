"""RL-VLM-F: frame labelers (a plugged-in callable and the built-in CLIP one) label pairs for the preference model."""

import json

import numpy as np
import open_clip
import pytest
import torch

from rewards.clip import CLIPReward
from rewards.preference import PreferenceRewardModel, preference_accuracy
from rewards.vlm_preference import (
    TIE,
    CLIPFrameLabeler,
    VLMPreferenceTeacher,
    answer_to_label,
    label_frame_pairs,
)

TINY = "crlab-tiny-clip-vlm"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
TASK = "a red square"


def brightness_labeler(frame_a, frame_b, task_text):
    """A stand-in for a VLM: the brighter frame achieves the task; equal brightness is a tie."""
    a, b = frame_a.mean(), frame_b.mean()
    return TIE if a == b else (0 if a > b else 1)


def frames_of(levels):
    return np.stack([np.full((8, 8, 3), level, dtype=np.uint8) for level in levels])


def test_answers_map_to_bradley_terry_labels():
    assert [answer_to_label(a) for a in (0, 1, TIE, "0", " 1 ", "-1", "tie", "Tie")] == [1.0, 0.0, 0.5, 1.0, 0.0, 0.5, 0.5, 0.5]
    with pytest.raises(ValueError, match="expected 0, 1"):
        answer_to_label("image 2")


def test_any_callable_plugs_in():
    labels = label_frame_pairs(brightness_labeler, frames_of([200, 10, 50]), frames_of([100, 90, 50]), TASK)
    torch.testing.assert_close(labels, torch.tensor([1.0, 0.0, 0.5]))


def test_teacher_compares_the_last_frames_of_segments():
    teacher = VLMPreferenceTeacher(brightness_labeler, TASK)
    a = {"frames": np.stack([frames_of([0, 250]), frames_of([250, 0])])}  # (N=2, T=2, H, W, 3)
    b = {"frames": np.stack([frames_of([100, 100]), frames_of([100, 100])])}
    torch.testing.assert_close(teacher(a, b), torch.tensor([1.0, 0.0]))
    assert teacher.needs == {"frames"}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    (folder / f"{TINY}.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(folder / f"{TINY}.json")
    torch.manual_seed(0)
    path = folder / "tiny.pt"
    torch.save(open_clip.create_model(TINY, pretrained=None).state_dict(), path)
    return CLIPReward(TASK, TINY, str(path), baseline_prompts="a square", alpha=0.5)


def test_clip_labeler_prefers_the_higher_clip_reward_and_ties_within_the_margin(tiny_clip):
    rng = np.random.default_rng(0)
    frames_a, frames_b = (rng.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8) for _ in range(2))
    reward_a, reward_b = tiny_clip({"frames": frames_a}), tiny_clip({"frames": frames_b})  # same task text as goal
    labeler = CLIPFrameLabeler(tiny_clip)
    expected = torch.where(reward_a > reward_b, 1.0, 0.0)
    torch.testing.assert_close(label_frame_pairs(labeler, frames_a, frames_b, TASK), expected)
    assert labeler(frames_a[0], frames_b[0], TASK) == (0 if reward_a[0] > reward_b[0] else 1)  # one pair at a time
    gap = (reward_a - reward_b).abs()
    margin = float(gap.median())
    tied = label_frame_pairs(CLIPFrameLabeler(tiny_clip, tie_margin=margin), frames_a, frames_b, TASK)
    assert torch.equal(tied == 0.5, gap <= margin)
    # another task text is embedded (once) and used as the goal
    other = labeler.scores(frames_a, "a blue circle")
    assert set(labeler.goals) == {TASK, "a blue circle"} and not torch.allclose(other, reward_a)


def test_vlm_labels_train_a_state_preference_model():
    """A frame labeler that prefers the state closer to the origin teaches r̂(s') = −|s'| (single-state pairs)."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    states_a, states_b = torch.randn(2, 600, 1, 2, generator=gen)  # (N, T=1, 2)

    def render(states):  # a "frame" whose brightness says how close the state is to the origin
        level = (255 * torch.exp(-states[:, :, :].norm(dim=-1))).to(torch.uint8)  # (N, T)
        return level[..., None, None, None].expand(-1, -1, 4, 4, 3).numpy()

    teacher = VLMPreferenceTeacher(brightness_labeler, TASK)
    seg_a = {"next_obs": states_a, "frames": render(states_a)}
    seg_b = {"next_obs": states_b, "frames": render(states_b)}
    labels = teacher(seg_a, seg_b)
    model = PreferenceRewardModel(2, 0, input="next_obs", ensemble_size=1, hidden_dim=32, num_layers=2, lr=3e-3)
    model.fit({"next_obs": states_a[:500]}, {"next_obs": states_b[:500]}, labels[:500], epochs=30, batch_size=64)
    with torch.no_grad():
        held_out = preference_accuracy(model.segment_returns({"next_obs": states_a[500:]}).mean(0),
                                       model.segment_returns({"next_obs": states_b[500:]}).mean(0), labels[500:])
    assert held_out > 0.9
