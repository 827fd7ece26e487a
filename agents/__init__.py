"""Learning algorithms. `AGENTS` maps the CLI name (`agent=crl`) to the agent class and its config dataclass."""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium
import torch

from agents.base import Agent
from agents.cpl import CPLAgent, CPLConfig
from agents.crl import CRLAgent, CRLConfig
from agents.curl import CURLAgent, CURLConfig
from agents.ppo import PPOAgent, PPOConfig
from agents.sb3 import SB3PPOAgent, SB3PPOConfig, SB3SACAgent, SB3SACConfig, SB3TQCAgent, SB3TQCConfig

AGENTS: dict[str, tuple[type, type]] = {
    "crl": (CRLAgent, CRLConfig),
    "ppo": (PPOAgent, PPOConfig),
    "curl": (CURLAgent, CURLConfig),
    "cpl": (CPLAgent, CPLConfig),
    "sb3_ppo": (SB3PPOAgent, SB3PPOConfig),
    "sb3_sac": (SB3SACAgent, SB3SACConfig),
    "sb3_tqc": (SB3TQCAgent, SB3TQCConfig),
}
LOOPS = ("online", "offline", "sb3")  # scripts.train's loop per agent: env steps | dataset updates | SB3's learn


def agent_loop(name: str) -> str:
    """Which training loop agent `name` runs under (its class attribute `loop`; `online` by default)."""
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; known agents: {sorted(AGENTS)}")
    return getattr(AGENTS[name][0], "loop", "online")


def make_agent_config(name: str, options: dict[str, Any]) -> Any:
    """Build the config dataclass of agent `name` from a plain dict, naming any unknown key and the valid ones."""
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; known agents: {sorted(AGENTS)}")
    config_cls = AGENTS[name][1]
    valid = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"agent {name!r} has no option(s) {unknown}; valid options: {sorted(valid)}")
    return config_cls(**options)


def make_agent(
    name: str,
    options: dict[str, Any],
    observation_space: gymnasium.Space,
    action_space: gymnasium.Space,
    num_envs: int,
    max_episode_steps: int,
    device: torch.device,
) -> Agent:
    """Construct agent `name` for envs with the given single-env spaces."""
    cfg = make_agent_config(name, options)
    agent_cls = AGENTS[name][0]
    return agent_cls(observation_space, action_space, cfg, num_envs, max_episode_steps, device)


def resolve_device(device: str) -> torch.device:
    """`auto` -> CUDA when available, else CPU; anything else is passed to `torch.device`."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device={device!r} is not a torch device; use auto, cpu, cuda or cuda:N") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here; use device=auto or device=cpu")
    return resolved
