"""Record rollouts of a trained agent: `python -m scripts.record checkpoint=PATH episodes=N`.

Writes `<out>.mp4` and `<out>.npz` (the rollout layout of `envs.recorder`), by default under `videos/`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium
import hydra
import torch
from omegaconf import DictConfig, OmegaConf

import envs  # noqa: F401  (registers crlab/ envs)
from agents import make_agent, resolve_device
from agents.checkpoint import load_checkpoint
from scripts.cli import check_overrides, user_errors
from scripts.evaluate import record_episodes


def record(checkpoint_path: Path, episodes: int, seed: int, device: str, out: Path | None) -> tuple[Path, Path]:
    """Rebuild env and agent from the checkpoint's own config; record `episodes` deterministic episodes."""
    state = load_checkpoint(checkpoint_path)
    cfg = OmegaConf.create(state["config"])
    torch.manual_seed(seed)
    env_kwargs = OmegaConf.to_container(cfg.env.kwargs, resolve=True)
    env = gymnasium.make(cfg.env.id, render_mode="rgb_array", **env_kwargs)
    agent_options = {k: v for k, v in OmegaConf.to_container(cfg.agent, resolve=True).items() if k != "name"}
    agent = make_agent(cfg.agent.name, agent_options, env.observation_space, env.action_space, 1,
                       cfg.env.max_episode_steps, resolve_device(device))
    agent.load_state_dict(state["agent"])
    if out is None:
        run_name = checkpoint_path.resolve().parent.parent.name
        out = Path("videos") / f"{run_name}_step{state['env_steps']}"
    paths = record_episodes(agent, env, episodes, seed, out)
    env.close()
    return paths


@hydra.main(config_path="conf", config_name="record", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with user_errors():
        video, rollout = record(Path(cfg.checkpoint), cfg.episodes, cfg.seed, cfg.device, Path(cfg.out) if cfg.out else None)
    print(f"video: {video}\nrollout: {rollout}")


if __name__ == "__main__":
    check_overrides(Path(__file__).parent / "conf", "record", sys.argv[1:])
    main()
