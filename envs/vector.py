"""The vector constructors crlab registers, one module attribute each. A spec names them by string
("envs.vector:reach"), as Gymnasium does its own entry points, so that `EnvSpec.to_json` (which Minari's DataCollector
calls to store the env with a dataset) accepts every crlab env; each still imports its env module only when used."""

from envs.batched import vector_entry_point

reach = vector_entry_point("envs.reach:ReachVectorEnv", mjx="envs.mjx_reach:MJXReachVectorEnv")
push = vector_entry_point("envs.push:PushVectorEnv")
dmc = vector_entry_point("envs.dmc:DMCVectorEnv")
flight_preference = vector_entry_point("envs.flight_preference:FlightPreferenceVectorEnv")
negotiation = vector_entry_point("envs.negotiation:NegotiationVectorEnv")
instruction_feedback = vector_entry_point("envs.instruction_feedback:InstructionFeedbackVectorEnv")
fetch = vector_entry_point("envs.fetch:FetchVectorEnv")
maze = vector_entry_point("envs.maze:MazeVectorEnv")
meta_world = vector_entry_point("envs.meta_world:MetaWorldVectorEnv")
ogbench_cube = vector_entry_point("envs.ogbench_manip:OGBenchCubeVectorEnv")
ogbench_scene = vector_entry_point("envs.ogbench_manip:OGBenchSceneVectorEnv")
ogbench_point_maze = vector_entry_point("envs.ogbench_maze:OGBenchPointMazeVectorEnv")
