"""crlab environments. Importing this package registers them with Gymnasium under the `crlab/` namespace.

    import gymnasium, envs
    env = gymnasium.make("crlab/Reach-v0")                       # one env
    vec = gymnasium.make_vec("crlab/Reach-v0", num_envs=64)      # batched: one MuJoCo model, one step call
"""

from gymnasium.envs.registration import register, registry

REACH_EPISODE_STEPS = 50

if "crlab/Reach-v0" not in registry:
    register(
        id="crlab/Reach-v0",
        entry_point="envs.reach:ReachEnv",
        vector_entry_point="envs.reach:ReachVectorEnv",
        max_episode_steps=REACH_EPISODE_STEPS,
    )
