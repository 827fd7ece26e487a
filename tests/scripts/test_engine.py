"""The run engine: the order and count of hook calls, its three stops, and an online source driven by it."""

import gymnasium
import numpy as np
import torch

import envs  # noqa: F401
from scripts.engine import DatasetSource, Engine, EnvSource, Hook, Step


class Recorder(Hook):
    def __init__(self, name, calls, stop_at=None):
        self.name, self.calls, self.stop_at = name, calls, stop_at

    def at_mark(self, engine, stop):
        self.calls.append((self.name, "mark", engine.steps, stop))

    def after_step(self, engine, step):
        self.calls.append((self.name, "step", engine.steps, step.steps))

    def wants_stop(self, engine):
        return self.stop_at is not None and engine.steps >= self.stop_at


class CountingAgent:
    device = torch.device("cpu")

    def __init__(self):
        self.updates = 0

    def update(self):
        self.updates += 1
        return {"loss": torch.tensor(float(self.updates))}


def test_hooks_run_in_order_and_the_stop_mark_comes_once():
    calls = []
    agent = CountingAgent()
    DatasetSource(agent).drive(Engine([Recorder("a", calls), Recorder("b", calls)], total_steps=2))
    assert agent.updates == 2
    assert calls == [("a", "mark", 0, False), ("b", "mark", 0, False), ("a", "step", 1, 1), ("b", "step", 1, 1),
                     ("a", "mark", 1, False), ("b", "mark", 1, False), ("a", "step", 2, 1), ("b", "step", 2, 1),
                     ("a", "mark", 2, True), ("b", "mark", 2, True)]


def test_a_hook_a_time_limit_or_a_resumed_step_count_stops_the_run():
    calls = []
    agent = CountingAgent()
    DatasetSource(agent).drive(Engine([Recorder("a", calls, stop_at=3)], total_steps=100))
    assert agent.updates == 3 and calls[-1] == ("a", "mark", 3, True)
    agent = CountingAgent()
    DatasetSource(agent).drive(Engine([], total_steps=10**9, time_limit_s=5.0, wall_offset_s=5.0))  # time spent before
    assert agent.updates == 0
    agent = CountingAgent()
    DatasetSource(agent).drive(Engine([], total_steps=10, steps=8))
    assert agent.updates == 2


class RandomStepAgent:
    """act / observe / update of a random policy that records what it was given."""

    device = torch.device("cpu")

    def __init__(self, space):
        self.space, self.observed = space, []

    def act(self, obs, deterministic=False):
        return torch.as_tensor(np.stack([self.space.sample() for _ in range(len(obs["observation"]))]))

    def observe(self, obs, action, reward, next_obs, terminated, truncated):
        self.observed.append((reward.dtype, bool((terminated | truncated).any())))

    def update(self):
        return {}


def test_env_source_steps_the_vector_env_and_hands_episode_ends_to_the_hooks():
    env = gymnasium.make_vec("crlab/Reach-v0", num_envs=3, max_episode_steps=5)
    agent = RandomStepAgent(env.single_action_space)
    ends = []

    class Ends(Hook):
        def after_step(self, engine, step: Step):
            assert step.reward.shape == (3,) and step.gt_reward is not None
            ends.append(step.done.copy())

    engine = Engine([Ends()], total_steps=30)
    EnvSource(agent, env, seed=0).drive(engine)
    env.close()
    assert engine.steps == 30 and len(agent.observed) == 10  # 10 vector steps of 3 copies
    assert all(dtype == torch.float32 for dtype, _ in agent.observed)
    assert [bool(d.all()) for d in ends] == [False, False, False, False, True] * 2  # episodes of 5 steps


class ConstantAgent:
    device = torch.device("cpu")

    def act(self, obs, deterministic=False):
        return torch.full((len(obs["observation"]), 2), 0.3)


def test_evaluation_in_rounds_equals_one_copy_per_episode():
    from scripts.evaluate import evaluate

    wide = gymnasium.make_vec("crlab/Reach-v0", num_envs=6, max_episode_steps=20, reward_type="dense")
    narrow = gymnasium.make_vec("crlab/Reach-v0", num_envs=2, max_episode_steps=20, reward_type="dense")
    once = evaluate(ConstantAgent(), wide, seed=5)
    rounds = evaluate(ConstantAgent(), narrow, seed=5, episodes=6)  # episode k seeded 5 + k either way
    assert rounds == once and once["eval_return"] != evaluate(ConstantAgent(), wide, seed=6)["eval_return"]
    assert evaluate(ConstantAgent(), narrow, seed=5, episodes=3).keys() == once.keys()
