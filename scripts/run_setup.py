"""What every run starts from (scripts.engine's training runs, record, make_preferences, the benchmarks): the
vector envs, the reward module and its online feedback, and the agent, built once from the config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import envs  # noqa: F401  (registers crlab/ envs)
from agents import dataset_format, make_agent
from agents.base import RelabelsRewards, UsesGoalSpace
from agents.minari_dataset import read_goal_dataset
from agents.preference_dataset import load_preference_dataset
from envs.goal_space import goal_space_of
from rewards.from_config import feedback_from_config, reward_from_config
from rewards.wrapper import VectorRewardWrapper

GROUPS = ("agent", "env", "reward")  # the config groups of a run (scripts/conf/agent, env, reward)
CONF_DIR = Path(__file__).resolve().parent / "conf"


def compose_config(name: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """scripts/conf/<name>.yaml composed with Hydra overrides, outside a Hydra app (benchmarks, tests)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(name, overrides=list(overrides))


def agent_options(cfg: DictConfig) -> dict:
    """The agent's options of a run config: its `agent` group as a plain dict, without the `name` that picks it."""
    return {k: v for k, v in OmegaConf.to_container(cfg.agent, resolve=True).items() if k != "name"}


def fit_buffer_to_run(cfg: DictConfig, options: dict, num_envs: int) -> dict:
    """A replay buffer no larger than the run can fill: `buffer_size` capped at the run's `total_env_steps` plus one
    episode per copy (a buffer that never wraps holds the same data either way; memory is what changes)."""
    total = cfg.get("total_env_steps")
    if "buffer_size" not in options or not total:
        return options
    fill = int(total) + num_envs * int(cfg.env.max_episode_steps or 0)
    return {**options, "buffer_size": min(int(options["buffer_size"]), fill)}


def agent_from_config(cfg: DictConfig, observation_space: gymnasium.Space, action_space: gymnasium.Space, num_envs: int,
                      device: torch.device) -> Any:
    """The agent of a run config for these spaces and `num_envs` copies (its buffer sized to the run)."""
    return make_agent(cfg.agent.name, fit_buffer_to_run(cfg, agent_options(cfg), num_envs), observation_space, action_space,
                      num_envs, cfg.env.max_episode_steps, device)


def give_goal_space(agent: Any, env: gymnasium.Env | gymnasium.vector.VectorEnv) -> None:
    """Hand the env's goal space (env.kwargs.goal_space) to an agent whose goal sampler uses it."""
    goal_space = goal_space_of(env)
    if goal_space is not None and isinstance(agent, UsesGoalSpace):
        agent.set_goal_space(goal_space)


def make_envs(cfg: DictConfig, num_envs: int, render_mode: str | None = None, backend: str = "mujoco"
              ) -> gymnasium.vector.VectorEnv:
    """`num_envs` copies of the run's env (its id, kwargs and episode length); `backend` another simulator's form
    (reach: "mjx", MuJoCo XLA), for the training copies (evaluation and videos stay on the C MuJoCo form)."""
    kwargs = OmegaConf.to_container(cfg.env.kwargs, resolve=True)
    if backend != "mujoco":
        kwargs["backend"] = backend
    return gymnasium.make_vec(cfg.env.id, num_envs=num_envs, max_episode_steps=cfg.env.max_episode_steps,
                              render_mode=render_mode, **kwargs)


def eval_copies(cfg: DictConfig) -> int:
    """Copies of the evaluation env: one per evaluation episode, or the env config's `eval_num_envs` where its copies
    are heavy (dm_control, OGBench: tens to hundreds of MB each); the episodes then run in rounds."""
    return min(cfg.eval_episodes, cfg.env.get("eval_num_envs") or cfg.eval_episodes)


def make_video_env(cfg: DictConfig) -> gymnasium.Env:
    """One rgb_array copy of the run's env for recorded episodes."""
    return gymnasium.make(cfg.env.id, render_mode="rgb_array", **OmegaConf.to_container(cfg.env.kwargs, resolve=True))


@dataclass
class Built:
    """A run's parts: training env (None offline), evaluation and video envs, reward module and its online
    feedback (None with reward=none) and the agent."""

    env: gymnasium.vector.VectorEnv | None
    eval_env: gymnasium.vector.VectorEnv
    video_env: gymnasium.Env
    reward_module: Any
    feedback: Any
    agent: Any

    def close(self) -> None:
        for env in (self.env, self.eval_env, self.video_env):
            if env is not None:
                env.close()


DATASET_LOADERS = {"goal": read_goal_dataset, "preferences": load_preference_dataset}  # goal: FILE or minari:ID
DATASET_MAKERS = {"goal": "python -m scripts.make_dataset", "preferences": "python -m scripts.make_preferences"}


def build_offline(cfg: DictConfig, device: torch.device) -> Built:
    """An offline run (cpl; crl or gcbc with agent.dataset): evaluation / video envs and the agent with its dataset."""
    reward_name = (cfg.get("reward") or {"name": "none"})["name"]
    if reward_name != "none":
        raise ValueError(f"agent={cfg.agent.name} learns offline from its dataset; reward={reward_name} does not apply")
    kind = dataset_format(cfg.agent.name)
    if kind is None:
        raise ValueError(f"agent={cfg.agent.name} learns online only; agent.dataset does not apply")
    if not cfg.agent.get("dataset"):
        raise ValueError(f"agent={cfg.agent.name} needs agent.dataset=FILE (make one with {DATASET_MAKERS[kind]})")
    data = DATASET_LOADERS[kind](cfg.agent.dataset)
    eval_env = make_envs(cfg, eval_copies(cfg))
    agent = agent_from_config(cfg, eval_env.single_observation_space, eval_env.single_action_space, eval_env.num_envs, device)
    give_goal_space(agent, eval_env)
    agent.set_dataset(data)
    return Built(None, eval_env, make_video_env(cfg), None, None, agent)


def build_run(cfg: DictConfig, run_dir: Path, checkpoint: dict | None, device: torch.device, offline: bool = False) -> Built:
    """Training / evaluation / video envs, the reward module and its online feedback, and the agent (`offline`: see
    `build_offline`). A resumed run reloads its online-learned reward model."""
    if offline:
        return build_offline(cfg, device)
    reward_cfg = cfg.get("reward") or {"name": "none"}  # runs from before reward=NAME existed have none
    render_mode = None if reward_cfg["name"] == "none" else "rgb_array"  # renders only if the reward module asks
    backend = cfg.env.get("backend", "mujoco")
    if backend != "mujoco" and reward_cfg["name"] != "none":
        raise ValueError(f"env.backend={backend} does not render, so reward={reward_cfg['name']} cannot score it; "
                         f"use env.backend=mujoco with reward modules")
    env = make_envs(cfg, cfg.env.num_envs, render_mode, backend)
    eval_env = make_envs(cfg, eval_copies(cfg), render_mode)
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
    agent = agent_from_config(cfg, env.single_observation_space, env.single_action_space, env.num_envs, device)
    give_goal_space(agent, env)
    if feedback is not None and isinstance(agent, RelabelsRewards):  # PEBBLE: the buffer is relabelled per session
        agent.check_reward_inputs(reward_module.obs_keys)
    return Built(env, eval_env, make_video_env(cfg), reward_module, feedback, agent)
