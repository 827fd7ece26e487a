"""PPO throughput against Stable-Baselines3: `python -m scripts.bench.ppo [--throughput-steps 81920] [--out FILE]`.

env-steps/s of crlab's PPO (closed-form step compiled (agent.compile=true) and eager, and autograd) and SB3 PPO in
one process: the same vector env (32 copies of Reach, dense reward), rollout length 64, tanh [64, 64] actor and
critic, 8 minibatches, 10 epochs, observation normalisation; each after an untimed warm-up update (for
compile=true that includes compiling, reported as compile_warmup_s).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import gymnasium
import torch

import envs  # noqa: F401  (registers crlab/ envs)
from agents import make_agent
from agents.sb3 import SB3PPOAgent, SB3PPOConfig
from scripts.bench import add_record_args, machine_info, write_results
from scripts.engine import Engine, EnvSource

CPU = torch.device("cpu")


def run_online(agent: Any, env: gymnasium.vector.VectorEnv, env_steps: int, seed: int) -> float:
    """`env_steps` env steps of the run engine's online source (act -> step -> observe -> update), no hooks;
    returns env-steps/s."""
    engine = Engine([], total_steps=env_steps)
    EnvSource(agent, env, seed).drive(engine)
    return engine.steps / engine.elapsed()



def ppo_vs_sb3(args: argparse.Namespace) -> dict[str, Any]:
    """Each agent first runs one rollout + update untimed (for compile=true that includes compiling, reported as
    compile_warmup_s), then `--throughput-steps` timed env steps."""
    num_envs, steps, warmup = 32, args.throughput_steps, 64 * 32

    def env() -> gymnasium.vector.VectorEnv:
        return gymnasium.make_vec("crlab/Reach-v0", num_envs=num_envs, max_episode_steps=50, reward_type="dense")

    def ours(**overrides: Any) -> tuple[float, float]:
        ours_env = env()
        torch.manual_seed(args.seed)
        agent = make_agent("ppo", {"num_steps": 64, "num_minibatches": 8, "update_epochs": 10, "hidden": [64, 64],
                                   **overrides},
                           ours_env.single_observation_space, ours_env.single_action_space, num_envs, 50, CPU)
        warmup_s = warmup / run_online(agent, ours_env, warmup, args.seed)
        return run_online(agent, ours_env, steps, args.seed + 1), warmup_s

    compiled_sps, compile_warmup_s = ours(compile=True)
    closed_form_sps, _ = ours()
    autograd_sps, _ = ours(fused_gradients=False)
    sb3_env = env()
    sb3 = SB3PPOAgent(sb3_env.single_observation_space, sb3_env.single_action_space,
                      SB3PPOConfig(num_steps=64, num_minibatches=8, update_epochs=10, hidden=[64, 64]), num_envs, 50, CPU)
    venv = sb3.bind(sb3_env)
    venv.seed(args.seed)
    sb3.model.learn(total_timesteps=warmup)
    start, first = time.perf_counter(), sb3.env_steps
    sb3.model.learn(total_timesteps=steps, reset_num_timesteps=False)
    sb3_sps = (sb3.env_steps - first) / (time.perf_counter() - start)
    return {"ours_compiled_env_steps_per_s": compiled_sps, "ours_env_steps_per_s": closed_form_sps,
            "ours_autograd_env_steps_per_s": autograd_sps, "sb3_env_steps_per_s": sb3_sps,
            "speedup_compiled": compiled_sps / sb3_sps, "speedup": closed_form_sps / sb3_sps,
            "compile_warmup_s": compile_warmup_s, "env_steps": steps, "num_envs": num_envs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--throughput-steps", type=int, default=81_920, help="timed env steps of each agent")
    add_record_args(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = ppo_vs_sb3(args)
    for key, value in results.items():
        print(f"{key:<36} {value:>14,.3f}" if isinstance(value, float) else f"{key:<36} {value:>14}")
    write_results(args.out, args, None, machine_info(), results)


if __name__ == "__main__":
    main()
