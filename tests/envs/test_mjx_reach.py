"""backend="mjx": reach on MuJoCo XLA (CPU JAX here) follows the C MuJoCo env step for step, through the registry."""

import builtins

import gymnasium
import numpy as np
import pytest
import torch

import envs  # noqa: F401
from envs.mjx_reach import MJX_EXTRA, MJXReachVectorEnv
from envs.reach import GOAL_RADIUS

pytest.importorskip("mujoco.mjx", reason=MJX_EXTRA)


@pytest.fixture(scope="module")
def pair():
    """The same 4 dense-reward arms in C MuJoCo and in MJX (one jit compile for the module)."""
    cpu = gymnasium.make_vec("crlab/Reach-v0", num_envs=4, reward_type="dense")
    mjx = gymnasium.make_vec("crlab/Reach-v0", num_envs=4, backend="mjx", reward_type="dense")
    yield cpu, mjx
    cpu.close()
    mjx.close()


def test_mjx_trajectories_match_c_mujoco_from_the_same_state(pair):
    cpu, mjx = pair
    assert isinstance(mjx, MJXReachVectorEnv)
    cpu.reset(seed=3)
    task = cpu.unwrapped.task
    obs = mjx.set_state(task.sim.qpos.copy(), task.goal.copy())
    np.testing.assert_allclose(obs["observation"].numpy(), task.observe()["observation"], atol=1e-6)
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(49):  # one episode but its last step (which would reset the two differently seeded envs)
        action = rng.uniform(-1.2, 1.2, (4, 2)).astype(np.float32)  # past the bounds too: both clip
        o_cpu, r_cpu, term_cpu, trunc_cpu, info_cpu = cpu.step(action)
        o_mjx, r_mjx, term_mjx, trunc_mjx, info_mjx = mjx.step(torch.as_tensor(action))
        for key in o_cpu:
            worst = max(worst, float(np.abs(o_mjx[key].numpy() - o_cpu[key]).max()))
        np.testing.assert_allclose(r_mjx.numpy(), r_cpu, atol=1e-5)
        assert (term_mjx.numpy() == term_cpu).all() and (trunc_mjx.numpy() == trunc_cpu).all()
        np.testing.assert_array_equal(info_mjx["is_success"].numpy(), info_cpu["is_success"])
    assert worst < 1e-5, worst  # float32 XLA vs float64 C MuJoCo: measured 7e-7 over the episode
    assert np.abs(o_cpu["observation"][:, 4:6]).max() > 0.5  # the arms moved: the comparison is not of zeros


def test_mjx_spaces_reward_and_same_step_autoreset(pair):
    cpu, mjx = pair
    for key, space in cpu.single_observation_space.spaces.items():
        assert mjx.single_observation_space[key].shape == space.shape
    assert mjx.single_action_space == cpu.single_action_space and mjx.num_envs == 4
    assert mjx.compute_reward.__func__ is cpu.unwrapped.task.compute_reward.__func__
    obs, _ = mjx.reset(seed=0)
    assert all(isinstance(v, torch.Tensor) and v.dtype == torch.float32 for v in obs.values())
    radius = obs["desired_goal"].norm(dim=1)
    assert ((radius >= GOAL_RADIUS[0]) & (radius <= GOAL_RADIUS[1])).all()
    for t in range(50):
        obs, reward, terminated, truncated, info = mjx.step(torch.ones(4, 2))
        assert bool(truncated.all()) == (t == 49) and not terminated.any()
    # at the 50th step the copies restarted: obs is the new episode's, the last one is in final_obs
    assert info["_final_obs"].all() and (obs["desired_goal"] != info["final_obs"]["desired_goal"]).all()
    np.testing.assert_allclose(-info["distance"].numpy(), reward.numpy(), atol=1e-6)
    first, _ = mjx.reset(seed=5)
    again, _ = mjx.reset(seed=5)
    torch.testing.assert_close(first["observation"], again["observation"])  # seeded


def test_unknown_backend_and_missing_extra_are_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match=r"backend='warp' is not one of \['mujoco', 'mjx'\]"):
        gymnasium.make_vec("crlab/Reach-v0", num_envs=2, backend="warp")
    with pytest.raises(ValueError, match="same step only"):
        gymnasium.make_vec("crlab/Reach-v0", num_envs=2, backend="mjx", autoreset_mode="next_step")
    with pytest.raises(ValueError, match="is not one of"):
        gymnasium.make_vec("crlab/Push-v0", num_envs=2, backend="mjx")  # Push has no MJX form yet
    real_import = builtins.__import__

    def no_jax(name, *args, **kwargs):
        if name == "jax" or name.startswith("jax."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_jax)
    with pytest.raises(ImportError, match=r'pip install "crlab\[mjx\]"'):
        MJXReachVectorEnv(num_envs=2)


class Recorder:
    """A vector env seen through the run engine: keeps what each step returned."""

    def __init__(self, env):
        self.env, self.steps = env, []
        self.tensor_io, self.num_envs = env.tensor_io, env.num_envs

    def reset(self, **kwargs):
        return self.env.reset(**kwargs)

    def step(self, action):
        assert isinstance(action, torch.Tensor)  # the engine hands torch actions to a tensor env, no numpy
        out = self.env.step(action)
        self.steps.append(out)
        return out


def test_crl_learns_from_the_mjx_env_through_the_run_engine():
    """The engine's online source on the mjx backend: every copy's 50-step episode lands in crl's buffer with the
    observations the env returned and, at the truncated step, the final (not the reset) achieved goal."""
    from agents.crl import CRLAgent, CRLConfig
    from scripts.engine import Engine, EnvSource

    env = gymnasium.make_vec("crlab/Reach-v0", num_envs=4, backend="mjx")
    agent = CRLAgent(env.single_observation_space, env.single_action_space, CRLConfig(batch_size=8, warmup_steps=200),
                     4, 50, torch.device("cpu"))
    recorder = Recorder(env)
    EnvSource(agent, recorder, seed=0).drive(Engine([], total_steps=4 * 60))
    env.close()
    assert agent.env_steps == 240 and len(agent.buffer) == 4  # one finished episode per copy
    slots = agent.buffer.lengths.nonzero().flatten()
    assert agent.buffer.lengths[slots].tolist() == [50] * 4
    last_obs, _, _, truncated, info = recorder.steps[49]
    assert truncated.all()
    for copy, slot in enumerate(slots.tolist()):
        stored = agent.buffer.next_achieved_goal[slot, :50]
        torch.testing.assert_close(stored[49], info["final_obs"]["achieved_goal"][copy])
        assert not torch.equal(stored[49], last_obs["achieved_goal"][copy])  # not the next episode's first state
        torch.testing.assert_close(stored[10], recorder.steps[10][0]["achieved_goal"][copy])
