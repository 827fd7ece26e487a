"""PEBBLE's relabelling: after a reward-model update, the rewards in an off-policy agent's replay buffer are the new
model's on the stored transitions (CURL's frame-stack buffer and SB3 SAC's buffer), and the run engine calls it."""

from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces
from hydra import compose, initialize_config_dir

import envs  # noqa: F401
from agents.base import RelabelsRewards
from agents.curl import CURLAgent, CURLConfig
from agents.sb3 import SB3SACAgent, SB3SACConfig
from rewards.preference import PreferenceRewardModel

CPU = torch.device("cpu")
CONF = Path(__file__).resolve().parents[2] / "scripts" / "conf"


def frame_stream(steps: int, num_envs: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(obs, action, next_obs) per vector step of random 2-frame stacks (6, 12, 12) whose next stack shifts by one
    frame, as a frame-stacked env gives them; actions in the env's bounds [0, 4]."""
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (steps + 2, num_envs, 3, 12, 12), generator=g).float()
    stream = []
    for t in range(steps):
        obs = torch.cat([frames[t], frames[t + 1]], 1)
        next_obs = torch.cat([frames[t + 1], frames[t + 2]], 1)
        stream.append((obs, torch.rand(num_envs, 2, generator=g) * 4, next_obs))
    return stream


@pytest.mark.parametrize("dict_obs", [False, True])
def test_curl_buffer_rewards_are_the_new_models_after_relabel(dict_obs):
    box = spaces.Box(0, 255, (6, 12, 12), np.uint8)
    obs_space = spaces.Dict({"pixels": box}) if dict_obs else box
    action_space = spaces.Box(0.0, 4.0, (2,), np.float32)
    agent = CURLAgent(obs_space, action_space, CURLConfig(batch_size=8, hidden=[16], num_filters=4, warmup_steps=0,
                                                          buffer_size=64, crop_size=10, num_conv_layers=2), 4, 50, CPU)
    assert isinstance(agent, RelabelsRewards)
    view = (lambda x: {"pixels": x}) if dict_obs else (lambda x: x)
    stream = frame_stream(10, 4)
    for obs, action, next_obs in stream:
        agent.observe(view(obs), action, torch.zeros(4), view(next_obs), np.zeros(4, bool), np.zeros(4, bool))
    keys = ["pixels"] if dict_obs else None
    model = PreferenceRewardModel.from_spaces(obs_space, action_space, obs_keys=keys, ensemble_size=2, hidden_dim=8,
                                              num_layers=1)
    agent.check_reward_inputs(keys)
    agent.relabel_rewards(model.relabel)
    with torch.no_grad():
        expected = torch.cat([model({"obs": view(o), "action": a, "next_obs": view(n)}) for o, a, n in stream])
    assert expected.abs().min() > 0  # not the zeros stored
    torch.testing.assert_close(agent.buffer.reward[:40], expected, rtol=1e-4, atol=1e-4)
    if dict_obs:
        with pytest.raises(ValueError, match=r"reward.obs_keys=\[pixels\]"):
            agent.check_reward_inputs(None)


def test_sb3_sac_buffer_rewards_are_the_new_models_after_relabel():
    env = gymnasium.make_vec("crlab/Reach-v0", num_envs=4, max_episode_steps=50)
    agent = SB3SACAgent(env.single_observation_space, env.single_action_space,
                        SB3SACConfig(warmup_steps=10_000, hidden=[16], her=False), 4, 50, CPU)
    agent.bind(env, her_allowed=False)
    agent.model.learn(total_timesteps=120)  # 30 vector steps stored, no gradient step yet
    buffer = agent.model.replay_buffer
    assert buffer.pos == 30
    model = PreferenceRewardModel.from_spaces(env.single_observation_space, env.single_action_space,
                                              obs_keys=["achieved_goal", "desired_goal"], ensemble_size=2, hidden_dim=8)
    agent.relabel_rewards(model.relabel)
    obs = {k: torch.as_tensor(v[:30].reshape(120, -1)) for k, v in buffer.observations.items()}
    next_obs = {k: torch.as_tensor(v[:30].reshape(120, -1)) for k, v in buffer.next_observations.items()}
    with torch.no_grad():
        expected = model({"obs": obs, "action": torch.as_tensor(buffer.actions[:30].reshape(120, -1)),
                          "next_obs": next_obs}).numpy()
    np.testing.assert_allclose(buffer.rewards[:30].reshape(-1), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(buffer.rewards[:30], -1.0)  # the env's sparse rewards were replaced
    env.close()


def test_online_preference_run_relabels_the_replay_buffer_each_session(tmp_path, monkeypatch):
    from scripts.train import train

    calls = []
    original = SB3SACAgent.relabel_rewards

    def counting(self, reward_fn):
        calls.append(self.env_steps)
        original(self, reward_fn)

    monkeypatch.setattr(SB3SACAgent, "relabel_rewards", counting)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[
            "agent=sb3_sac", "env=reach", "env.num_envs=4", "reward=preference", "reward.hidden_dim=16",
            "reward.obs_keys=[achieved_goal,desired_goal]", "reward.online.first_query=200",
            "reward.online.query_every=200", "reward.online.queries=10", "reward.online.candidates=40",
            "reward.online.epochs=1", "agent.warmup_steps=100", "agent.hidden=[16]", "agent.batch_size=16",
            "total_env_steps=600", "eval_every=600", "eval_episodes=2", "progress=false", "device=cpu",
            "video_episodes=0"])
    train(cfg, tmp_path / "run")
    assert len(calls) >= 2 and calls == sorted(calls)
