"""crlab environments. Importing this package registers them with Gymnasium under the `crlab/` namespace.

    import gymnasium, envs
    env = gymnasium.make("crlab/Reach-v0")                       # one env
    vec = gymnasium.make_vec("crlab/Reach-v0", num_envs=64)      # batched: one MuJoCo model, one step call
    vec = gymnasium.make_vec("crlab/Reach-v0", num_envs=64, autoreset_mode="next_step")  # for gymnasium's wrappers
    vec = gymnasium.make_vec("crlab/Reach-v0", num_envs=4096, backend="mjx")  # MuJoCo XLA (the mjx extra), torch out
"""

import os

# Headless by default: EGL renders offscreen on GPUs and on CPUs (Mesa). Set MUJOCO_GL yourself to override.
os.environ.setdefault("MUJOCO_GL", "egl")

from gymnasium.envs.registration import register, registry  # noqa: E402

REACH_EPISODE_STEPS = 50

if "crlab/Reach-v0" not in registry:
    register(
        id="crlab/Reach-v0",
        entry_point="envs.reach:ReachEnv",
        vector_entry_point="envs.vector:reach",
        max_episode_steps=REACH_EPISODE_STEPS,
    )

if "crlab/FlightPreference-v0" not in registry:
    register(
        id="crlab/FlightPreference-v0",
        entry_point="envs.flight_preference:FlightPreferenceEnv",
        vector_entry_point="envs.vector:flight_preference",
    )

if "crlab/Negotiation-v0" not in registry:
    register(
        id="crlab/Negotiation-v0",
        entry_point="envs.negotiation:NegotiationEnv",
        vector_entry_point="envs.vector:negotiation",
    )

if "crlab/InstructionFeedback-v0" not in registry:
    register(
        id="crlab/InstructionFeedback-v0",
        entry_point="envs.instruction_feedback:InstructionFeedbackEnv",
        vector_entry_point="envs.vector:instruction_feedback",
    )

# dm_control from pixels (envs/dmc.py): the CURL benchmark tasks. No max_episode_steps: the env truncates itself at
# dm_control's time limit, ceil(1000 / action_repeat) steps, which depends on the `action_repeat` kwarg.
for _domain, _task in [("cartpole", "swingup"), ("reacher", "easy"), ("cheetah", "run"), ("walker", "walk"),
                       ("finger", "spin"), ("ball_in_cup", "catch")]:
    if f"crlab/DMC-{_domain}-{_task}-v0" not in registry:
        register(
            id=f"crlab/DMC-{_domain}-{_task}-v0",
            entry_point="envs.dmc:DMCEnv",
            vector_entry_point="envs.vector:dmc",
            kwargs={"domain": _domain, "task": _task},
        )
del _domain, _task

PUSH_EPISODE_STEPS = 100

if "crlab/Push-v0" not in registry:
    register(
        id="crlab/Push-v0",
        entry_point="envs.push:PushEnv",
        vector_entry_point="envs.vector:push",
        max_episode_steps=PUSH_EPISODE_STEPS,
    )

# The standard suites (envs/fetch.py, envs/maze.py, envs/meta_world.py): the suites' own envs, unmodified, as crlab
# batched tasks. Their episode lengths are the suites' own.
VECTOR = {"Fetch": "fetch", "Maze": "maze", "MetaWorld": "meta_world", "OGBenchCube": "ogbench_cube",
          "OGBenchScene": "ogbench_scene", "OGBenchPointMaze": "ogbench_point_maze"}  # envs/vector.py's names


def _register_suite_env(env_id: str, module: str, form: str, steps: int, **kwargs: object) -> None:
    if env_id not in registry:
        register(id=env_id, entry_point=f"envs.{module}:{form}Env", vector_entry_point=f"envs.vector:{VECTOR[form]}",
                 max_episode_steps=steps, kwargs=kwargs)



for _task in ("Reach", "Push", "PickAndPlace", "Slide"):
    _register_suite_env(f"crlab/Fetch{_task}-v0", "fetch", "Fetch", 50, task=_task)
for _maze, _steps in (("PointMaze-UMaze", 300), ("PointMaze-Medium", 600), ("PointMaze-Large", 800),
                      ("AntMaze-UMaze", 700)):
    _register_suite_env(f"crlab/{_maze}-v0", "maze", "Maze", _steps, maze=_maze)
for _task in ("bin-picking-v3", "button-press-topdown-v3", "door-open-v3", "drawer-open-v3", "plate-slide-v3",
              "sweep-into-v3", "push-v3"):
    _register_suite_env(f"crlab/MetaWorld-{_task[:-3]}-v0", "meta_world", "MetaWorld", 500, task=_task,
                        goal_conditioned=False)
    _register_suite_env(f"crlab/MetaWorldGoal-{_task[:-3]}-v0", "meta_world", "MetaWorld", 500, task=_task,
                        goal_conditioned=True)
# OGBench's cube-single, cube-double and scene (envs/ogbench_manip.py): the offline goal-conditioned benchmark's
# manipulation
_register_suite_env("crlab/OGBenchCubeSingle-v0", "ogbench_manip", "OGBenchCube", 200)
_register_suite_env("crlab/OGBenchCubeDouble-v0", "ogbench_manip", "OGBenchCube", 500, cubes=2)
_register_suite_env("crlab/OGBenchScene-v0", "ogbench_manip", "OGBenchScene", 750)
# OGBench's PointMaze medium and large (envs/ogbench_maze.py): its locomaze tasks, for its navigate / stitch datasets
_register_suite_env("crlab/OGBenchPointMaze-Medium-v0", "ogbench_maze", "OGBenchPointMaze", 1000, maze="medium")
_register_suite_env("crlab/OGBenchPointMaze-Large-v0", "ogbench_maze", "OGBenchPointMaze", 1000, maze="large")
del _task, _maze, _steps
