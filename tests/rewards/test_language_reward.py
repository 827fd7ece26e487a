"""Language-shaped reward with the bundled offline MiniLM sentence encoder."""

import gymnasium
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers crlab/Reach-v0)
from envs.text_embedding import load_sentence_encoder
from rewards import make_reward
from rewards.language import InstructionPotential, LanguageReward
from rewards.wrapper import VectorRewardWrapper

INSTRUCTION = "The fingertip is on the green goal."
TEXTS = [
    "The green goal is 0.30 m away, below and to the left of the fingertip.",
    "The green goal is 0.12 m away, above the fingertip.",
    "The fingertip is on the green goal (0.01 m away).",
    "A cat is sleeping on the sofa.",
]


@pytest.fixture(scope="module")
def encoder():
    return load_sentence_encoder(device="cpu")


def test_potential_is_the_cosine_similarity(encoder):
    potential = InstructionPotential(INSTRUCTION, encoder)
    phi = potential({"text": [INSTRUCTION] + TEXTS})
    assert phi[0].item() == pytest.approx(1.0, abs=1e-5)
    assert phi[3].item() > phi[4].item()  # on-task text beats an unrelated one
    manual = torch.nn.functional.cosine_similarity(
        encoder.encode(TEXTS, convert_to_tensor=True), encoder.encode([INSTRUCTION], convert_to_tensor=True)
    )
    torch.testing.assert_close(phi[1:], manual, rtol=1e-5, atol=1e-5)


def test_shaping_reward_and_telescoping(encoder):
    module = LanguageReward(INSTRUCTION, gamma=1.0, encoder=encoder)
    assert module.needs == {"text", "prev_text"}
    reward = module({"prev_text": TEXTS[:-1], "text": TEXTS[1:]})
    phi = module.potential({"text": TEXTS})
    torch.testing.assert_close(reward, phi[1:] - phi[:-1])
    assert reward.sum().item() == pytest.approx((phi[-1] - phi[0]).item(), abs=1e-5)
    discounted = LanguageReward(INSTRUCTION, gamma=0.9, encoder=encoder)({"prev_text": TEXTS[:1], "text": TEXTS[1:2]})
    assert discounted.item() == pytest.approx(0.9 * phi[1].item() - phi[0].item(), abs=1e-5)


def test_raw_similarity_option(encoder):
    module = LanguageReward(INSTRUCTION, shaping=False, encoder=encoder)
    assert module.needs == {"text"}
    torch.testing.assert_close(module({"text": TEXTS}), module.potential({"text": TEXTS}))


def test_batched_equals_one_at_a_time_and_instruction_is_embedded_once(encoder, monkeypatch):
    module = LanguageReward(INSTRUCTION, gamma=0.99, encoder=encoder)
    encoded = []
    original = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda texts, **kwargs: encoded.extend(texts) or original(texts, **kwargs))
    batched = module({"prev_text": TEXTS, "text": TEXTS[::-1]})
    single = torch.cat([module({"prev_text": [p], "text": [t]}) for p, t in zip(TEXTS, TEXTS[::-1])])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)
    assert INSTRUCTION not in encoded


def test_vector_env_with_language_reward(encoder):
    reward = make_reward("language", instruction=INSTRUCTION, encoder=encoder)
    env = VectorRewardWrapper(gymnasium.make_vec("crlab/Reach-v0", num_envs=2, max_episode_steps=2), reward)
    env.reset(seed=0)
    for _ in range(3):
        _, r, _, _, info = env.step(env.action_space.sample())
        assert r.shape == (2,) and np.isfinite(r).all() and info["gt_reward"].shape == (2,)
