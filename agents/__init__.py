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
from agents.gcbc import GCBCAgent, GCBCConfig
from agents.gciql import GCIQLAgent, GCIQLConfig
from agents.ppo import PPOAgent, PPOConfig
from agents.sb3 import SB3PPOAgent, SB3PPOConfig, SB3SACAgent, SB3SACConfig, SB3TQCAgent, SB3TQCConfig
from envs.goal_space import REMOVED_AGENT_OPTIONS

AGENTS: dict[str, tuple[type, type]] = {
    "crl": (CRLAgent, CRLConfig),
    "ppo": (PPOAgent, PPOConfig),
    "curl": (CURLAgent, CURLConfig),
    "cpl": (CPLAgent, CPLConfig),
    "gcbc": (GCBCAgent, GCBCConfig),
    "gciql": (GCIQLAgent, GCIQLConfig),
    "sb3_ppo": (SB3PPOAgent, SB3PPOConfig),
    "sb3_sac": (SB3SACAgent, SB3SACConfig),
    "sb3_tqc": (SB3TQCAgent, SB3TQCConfig),
}
LOOPS = ("online", "offline", "sb3")  # scripts.train's loop per agent: env steps | dataset updates | SB3's learn


def agent_loop(name: str, options: dict[str, Any] | None = None) -> str:
    """Which experience source agent `name` learns from: its declared `loop` (agents.base.Agent), or `offline`
    whenever its options name a dataset (`agent=crl agent.dataset=PATH`)."""
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; known agents: {sorted(AGENTS)}")
    if (options or {}).get("dataset"):
        return "offline"
    return AGENTS[name][0].loop


def dataset_format(name: str) -> str | None:
    """The dataset files agent `name` learns from offline: `goal` (agents.goal_dataset), `preferences`
    (agents.preference_dataset), or None (online only); its declared `dataset_format`."""
    return AGENTS[name][0].dataset_format


# one name per concept across agents: the old names are refused with the new one
RENAMED = {"gamma": "discount", "init_steps": "warmup_steps", "learning_starts": "warmup_steps"}


def make_agent_config(name: str, options: dict[str, Any]) -> Any:
    """Build the config dataclass of agent `name` from a plain dict, naming any unknown key and the valid ones."""
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; known agents: {sorted(AGENTS)}")
    for old in sorted(set(options) & set(RENAMED)):
        raise ValueError(f"agent.{old} is now agent.{RENAMED[old]} (one name per concept across agents)")
    for old in sorted(set(options) & set(REMOVED_AGENT_OPTIONS)):
        raise ValueError(f"agent.{old} no longer exists: what a goal names is the env's, for every agent; choose "
                         "env.kwargs.goal_space=object|object_and_effector|push_behind (envs/goal_space.py)")
    config_cls = AGENTS[name][1]
    valid = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"agent {name!r} has no option(s) {unknown}; valid options: {sorted(valid)}")
    check_agent_values(name, options)
    return config_cls(**options)


# option names -> the values they accept, for every agent's config (one name per concept across agents)
POSITIVE = ("batch_size", "buffer_size", "repr_dim", "width", "num_steps", "num_minibatches", "update_epochs",
            "updates_per_step", "feature_dim", "num_filters", "num_conv_layers", "hidden_dim", "n_quantiles",
            "n_critics", "train_freq", "clip_coef")
NON_NEGATIVE = ("warmup_steps", "logsumexp_penalty", "max_grad_norm", "bc_coef", "vf_coef", "ent_coef")
UNIT_INTERVAL = ("discount", "tau", "target_tau", "gae_lambda", "expectile")  # (0, 1]


def sb3_entropy_setting(value: str) -> bool:
    """Whether SB3's SAC / TQC take `value` as ent_coef: "auto", "auto_<initial value>", or a number SB3 reads with
    float()."""
    if value == "auto":
        return True
    try:
        return float(value.removeprefix("auto_")) >= 0
    except ValueError:
        return False


def check_agent_values(name: str, options: dict[str, Any]) -> None:
    """ValueError naming the first agent option whose value is of the wrong type or out of range (a batch size of
    0, a negative learning rate, a discount above 1, ...), before anything is built."""
    for key, value in options.items():
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key == "hidden":
            widths = list(value) if not isinstance(value, (str, bytes)) and hasattr(value, "__iter__") else None
            if widths is None or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in widths):
                raise ValueError(f"agent.hidden={value!r} must be a list of positive layer widths, e.g. [256,256]")
            continue
        if key == "ent_coef" and isinstance(value, str):  # SB3's SAC / TQC: "auto", "auto_<initial value>" or a number
            if name not in ("sb3_sac", "sb3_tqc") or not sb3_entropy_setting(value):
                choices = "a number >= 0, auto or auto_<initial value>" if name in ("sb3_sac", "sb3_tqc") else "a number >= 0"
                raise ValueError(f"agent.ent_coef={value!r} must be {choices} (agent={name})")
            continue
        if key == "gradient_steps":  # SB3: -1 means one per env step collected
            if not (isinstance(value, int) and not isinstance(value, bool) and (value == -1 or value > 0)):
                raise ValueError(f"agent.gradient_steps={value!r} must be -1 or an integer > 0 (agent={name})")
            continue
        rule = ("> 0" if key in POSITIVE or key == "lr" or key.endswith("_lr") and key != "anneal_lr" else ">= 0" if key in NON_NEGATIVE else
                "in (0, 1]" if key in UNIT_INTERVAL else None)
        if rule is None or value is None or isinstance(value, bool):
            continue
        ok = numeric and ((value > 0) if rule == "> 0" else (value >= 0) if rule == ">= 0" else (0 < value <= 1))
        if not ok:
            raise ValueError(f"agent.{key}={value!r} must be a number {rule} (agent={name})")


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
