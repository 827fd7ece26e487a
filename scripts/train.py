"""Train an agent: `python -m scripts.train agent=crl env=reach [key=value ...]`.

A run is: config -> vector env -> agent.act -> env.step -> agent.observe (its buffer) -> agent.update -> logs;
every `eval_every` env steps: evaluation episodes, a recorded video and a metrics.csv row; every
`checkpoint_every`: a checkpoint. `resume=RUN_DIR` continues a run from its latest checkpoint (the replay buffer
is not saved: it refills with the restored policy). The loop and its cadence are scripts/engine.py's, shared
with the offline agents (`agent.dataset=FILE`: `total_gradient_steps` gradient steps), the SB3 agents (SB3's `learn`
drives the same hooks) and the benchmarks.

`reward=NAME` (scripts/conf/reward/) swaps the env's reward for a reward module's through
`rewards.wrapper.VectorRewardWrapper`; the ground truth stays in info["gt_reward"]. Then the log has both
`train/proxy_return` and `train/gt_return`, metrics.csv gains `eval_proxy_return` (evaluation success and
return stay ground truth), and an online-learned preference model is saved as RUN_DIR/reward_model.safetensors.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from scripts.cli import check_run_paths, start, user_errors
from scripts.engine import train
from scripts.run_setup import GROUPS

__all__ = ["train", "main"]

CONF = Path(__file__).resolve().parent / "conf"

# hydra.run.dir is the resumed run's directory when resume=RUN_DIR is given (see conf/train.yaml).
logging.getLogger("OpenGL").setLevel(logging.WARNING)
OmegaConf.register_new_resolver("resume_or", lambda resume, new: resume if resume else new, replace=True)


def with_resumed_groups(argv: list[str]) -> list[str]:
    """With `resume=RUN_DIR`: the run's own agent / env / reward groups ahead of the CLI overrides, so that keys of
    its agent (say `agent.ent_coef` of a ppo run) are valid; otherwise `argv` unchanged."""
    resume = next((a.split("=", 1)[1] for a in argv if a.startswith("resume=")), None)
    saved = Path(resume) / "config.yaml" if resume else None
    if saved is None or not saved.is_file():
        return argv
    cfg = OmegaConf.load(saved)
    return [f"{group}={cfg[group].name}" for group in GROUPS if group in cfg] + argv


def tuned_file(choice: str | None) -> Path | None:
    """scripts/conf/tuned/<choice>.yaml if it exists: Hydra names the optional `tuned` choice (AGENT_ENV) for every
    pair, whether or not a file matched it."""
    path = CONF / "tuned" / f"{choice}.yaml"
    return path if choice and path.is_file() else None


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    tuned = tuned_file(HydraConfig.get().runtime.choices.get("tuned"))
    if tuned is not None and cfg.resume is None:  # a resumed run keeps its saved config, tuned or not
        print(f"agent settings measured for this env: scripts/conf/tuned/{tuned.name} (~tuned: without them)")
    with user_errors():
        run_dir = train(cfg, Path(HydraConfig.get().runtime.output_dir), list(HydraConfig.get().overrides.task))
    print(f"run directory: {run_dir}")


if __name__ == "__main__":
    check_run_paths(sys.argv[1:])
    sys.argv[1:] = with_resumed_groups(sys.argv[1:])
    start(main, CONF, "train")  # a refused run leaves no run directory behind
