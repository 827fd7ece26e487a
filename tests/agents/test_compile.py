"""agent.compile=true runs the same update: compiled and eager agents from the same seed stay equal (CPU, float
tolerance). The graphs are traced by torch.compile and run by its `aot_eager` backend here (the traced forward and
backward without Inductor's C++ code generation, which takes a minute per agent on this CPU; scripts.bench.gpu
measures the Inductor path)."""

import functools

import numpy as np
import pytest
import torch
from gymnasium import spaces

import agents.base
from agents import make_agent

CPU = torch.device("cpu")
GOAL_SPACE = spaces.Dict({"observation": spaces.Box(-np.inf, np.inf, (4,)), "achieved_goal": spaces.Box(-np.inf, np.inf, (2,)),
                          "desired_goal": spaces.Box(-np.inf, np.inf, (2,))})


@pytest.fixture(autouse=True)
def traced_without_codegen(monkeypatch):
    monkeypatch.setattr(agents.base.torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    torch._dynamo.reset()


def crl_batch(g):
    return {"observation": torch.randn(32, 4, generator=g), "action": torch.rand(32, 2, generator=g) * 2 - 1,
            "goal": torch.randn(32, 2, generator=g)}


def cpl_batch(g):
    return {"obs_a": torch.randn(8, 5, 4, generator=g), "obs_b": torch.randn(8, 5, 4, generator=g),
            "action_a": torch.rand(8, 5, 2, generator=g) * 2 - 1, "action_b": torch.rand(8, 5, 2, generator=g) * 2 - 1,
            "label": (torch.rand(8, generator=g) > 0.5).float()}


def curl_batch(g):
    frames = lambda: torch.randint(0, 256, (8, 3, 24, 24), generator=g, dtype=torch.uint8)  # noqa: E731
    return {"obs": frames(), "next_obs": frames(), "action": torch.rand(8, 2, generator=g) * 2 - 1,
            "reward": torch.randn(8, generator=g), "not_done": (torch.rand(8, generator=g) > 0.1).float()}


CASES = {
    "crl": ({"hidden": [32, 32], "repr_dim": 8, "batch_size": 32, "actor_random_goals": 0.5, "bc_coef": 0.1},
            GOAL_SPACE, spaces.Box(-1, 1, (2,)), crl_batch),
    "cpl": ({"hidden": [32], "batch_size": 8, "norm_obs": False}, spaces.Box(-np.inf, np.inf, (4,)), spaces.Box(-1, 1, (2,)),
            cpl_batch),
    # a small pixel encoder: 24-px frames cropped to 20, two conv layers of 4 filters
    "curl": ({"hidden": [32], "batch_size": 8, "num_filters": 4, "num_conv_layers": 2, "feature_dim": 8, "crop_size": 20,
              "buffer_size": 100}, spaces.Box(0, 255, (3, 24, 24), np.uint8), spaces.Box(-1, 1, (2,)), curl_batch),
}
WITH_DRAW_INSIDE = ["crl", "cpl"]  # curl's draw stays outside: its buffer's valid-transition bookkeeping is on the host


def compiled_part(agent):
    """(the function compile=true replaces, what the agent calls in its place): curl compiles its gradient step
    below the host-side schedule, crl and cpl their whole update on a batch."""
    return (agent.step, agent.step_on) if hasattr(agent, "step_on") else (agent.update_on, agent.update_step)


@pytest.mark.parametrize("name", CASES)
def test_compiled_update_equals_eager(name):
    options, obs_space, action_space, make_batch = CASES[name]
    runs = []
    for compiled in (False, True):
        torch.manual_seed(0)
        agent = make_agent(name, {**options, "compile": compiled}, obs_space, action_space, 1, 5, CPU)
        g = torch.Generator().manual_seed(1)
        metrics = [agent.update_step(make_batch(g)) for _ in range(4)]  # curl: both schedule variants, twice
        runs.append((agent, metrics))
    (eager, eager_metrics), (compiled, compiled_metrics) = runs
    plain, called = compiled_part(compiled)
    assert called is not plain and compiled_part(eager)[1] == compiled_part(eager)[0]
    for a, b in zip(eager_metrics, compiled_metrics):
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)
    state_a, state_b = eager.state_dict(), compiled.state_dict()
    for key, value in state_a.items():
        if isinstance(value, dict) and all(isinstance(v, torch.Tensor) for v in value.values()):  # network weights
            for k in value:
                torch.testing.assert_close(state_b[key][k], value[k], rtol=1e-4, atol=1e-5)


def fill(agent, name, g):
    """Experience to draw from: crl one 5-step episode in its replay buffer (past warm-up), cpl 8 pairs."""
    if name == "crl":
        for t in range(5):
            agent.buffer.add(torch.randn(1, 4, generator=g), torch.rand(1, 2, generator=g) * 2 - 1,
                             torch.randn(1, 2, generator=g), np.array([t == 4]))
        agent.env_steps = agent.cfg.warmup_steps
    else:
        agent.data = cpl_batch(g)


@pytest.mark.parametrize("name", WITH_DRAW_INSIDE)
def test_compiled_step_with_its_replay_draw_equals_eager(name):
    """agent.update() with compile=true compiles the batch draw and the update as one step (train_step): the same
    draws and the same updates as eager."""
    options, obs_space, action_space, _ = CASES[name]
    runs = []
    for compiled in (False, True):
        torch.manual_seed(0)
        agent = make_agent(name, {**options, "compile": compiled}, obs_space, action_space, 1, 5, CPU)
        fill(agent, name, torch.Generator().manual_seed(1))
        runs.append([agent.update() for _ in range(3)])
        assert (agent.train_step != agent.sample_and_update) == compiled
    for a, b in zip(*runs):
        assert a.keys() == b.keys() and a
        for key in a:
            torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", CASES)
def test_compiled_agent_resumed_from_its_state_continues_identically(name):
    """Three compiled updates, state_dict and torch's RNG state -> a fresh compiled agent (what a checkpoint round trip
    restores), two more: equal to five uninterrupted compiled updates on the same batches (optimizer moments, step
    counts and the random goal swaps / policy samples included)."""
    options, obs_space, action_space, make_batch = CASES[name]
    g = torch.Generator().manual_seed(1)
    batches = [make_batch(g) for _ in range(5)]

    def fresh():
        torch.manual_seed(0)
        return make_agent(name, {**options, "compile": True}, obs_space, action_space, 1, 5, CPU)

    straight = fresh()
    expected = [straight.update_step(b) for b in batches][-1]
    first = fresh()
    for b in batches[:3]:
        first.update_step(b)
    state, rng = first.state_dict(), torch.get_rng_state()
    resumed = fresh()
    resumed.load_state_dict(state)
    torch.set_rng_state(rng)
    got = [resumed.update_step(b) for b in batches[3:]][-1]
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6)


def test_cuda_updates_are_captured_as_cuda_graphs():
    from agents.base import compile_mode

    assert compile_mode(torch.device("cuda")) == "reduce-overhead" and compile_mode(torch.device("cuda:1")) == "reduce-overhead"
    assert compile_mode(CPU) is None
