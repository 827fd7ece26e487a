"""What every training loop starts from (scripts.train's online loop, train_offline, train_sb3, the benchmarks):
the vector envs, the reward module and its online feedback, and the agent, built once from the config. Its own
module so that the loops import it without importing each other."""

from __future__ import annotations

from pathlib import Path

import gymnasium
import torch
from omegaconf import DictConfig, OmegaConf

import envs  # noqa: F401  (registers crlab/ envs)
from agents import make_agent
from agents.base import RelabelsRewards
from rewards.from_config import feedback_from_config, reward_from_config
from rewards.wrapper import VectorRewardWrapper


def agent_options(cfg: DictConfig) -> dict:
    """The agent's options of a run config: its `agent` group as a plain dict, without the `name` that picks it."""
    return {k: v for k, v in OmegaConf.to_container(cfg.agent, resolve=True).items() if k != "name"}


def make_envs(cfg: DictConfig, num_envs: int, render_mode: str | None = None) -> gymnasium.vector.VectorEnv:
    kwargs = OmegaConf.to_container(cfg.env.kwargs, resolve=True)
    return gymnasium.make_vec(cfg.env.id, num_envs=num_envs, max_episode_steps=cfg.env.max_episode_steps,
                              render_mode=render_mode, **kwargs)


def build_run(cfg: DictConfig, run_dir: Path, checkpoint: dict | None, device: torch.device) -> tuple:
    """Training / evaluation / video envs, the reward module and its online feedback (None with `reward=none`),
    and the agent: what every training loop (online, SB3) starts from. A resumed run reloads its reward model."""
    reward_cfg = cfg.get("reward") or {"name": "none"}  # runs from before reward=NAME existed have none
    render_mode = None if reward_cfg["name"] == "none" else "rgb_array"  # renders only if the reward module asks
    env = make_envs(cfg, cfg.env.num_envs, render_mode)
    eval_env = make_envs(cfg, cfg.eval_episodes, render_mode)
    discount = cfg.agent.get("discount")  # the agent's γ, which shaping must use
    reward_module = reward_from_config(reward_cfg, env.single_observation_space, env.single_action_space, device,
                                       discount, env_id=cfg.env.id)
    feedback = feedback_from_config(reward_cfg, reward_module, env.num_envs, cfg.seed)
    reward_path = run_dir / "reward_model.safetensors"
    if reward_module is not None:
        if feedback is not None and checkpoint is not None and reward_path.exists():
            reward_module.load(reward_path)
        env = VectorRewardWrapper(env, reward_module, observer=feedback)
        eval_env = VectorRewardWrapper(eval_env, reward_module)
    video_env = gymnasium.make(cfg.env.id, render_mode="rgb_array", **OmegaConf.to_container(cfg.env.kwargs, resolve=True))
    agent = make_agent(cfg.agent.name, agent_options(cfg), env.single_observation_space, env.single_action_space, env.num_envs,
                       cfg.env.max_episode_steps, device)
    if feedback is not None and isinstance(agent, RelabelsRewards):  # PEBBLE: the buffer is relabelled per session
        agent.check_reward_inputs(reward_module.obs_keys)
    return env, eval_env, video_env, reward_module, feedback, agent
