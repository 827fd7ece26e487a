"""SB3 baselines: the VecEnv adapter, run artifacts through scripts.train, weights-only checkpoints, HER."""

import csv
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

import envs  # noqa: F401
from agents import agent_loop, make_agent
from agents.sb3 import SB3VecEnv
from scripts.train import train

CONF = Path(__file__).resolve().parents[2] / "scripts" / "conf"
CPU = torch.device("cpu")


def config(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=["progress=false", "device=cpu", *overrides])


def rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_vec_env_adapter_reports_true_final_observations():
    env = gymnasium.make_vec("crlab/Reach-v0", num_envs=3, max_episode_steps=2)
    venv = SB3VecEnv(env)
    venv.seed(0)
    obs = venv.reset()
    assert obs["observation"].shape == (3, 8)
    actions = np.ones((3, 2), dtype=np.float32)
    venv.step(actions)
    obs, reward, done, infos = venv.step(actions)
    assert done.all() and reward.dtype == np.float32
    assert all(info["TimeLimit.truncated"] for info in infos)
    final = infos[0]["terminal_observation"]["observation"]
    assert not np.allclose(final, obs["observation"][0])  # obs is already the next episode's first
    reward_fn = venv.env_method("compute_reward", np.zeros((5, 2)), np.zeros((5, 2)), {}, indices=[0])
    assert len(reward_fn) == 1 and reward_fn[0].shape == (5,)
    venv.close()


@pytest.mark.parametrize("name,overrides", [
    ("sb3_sac", ["agent.warmup_steps=400", "agent.hidden=[32,32]", "agent.batch_size=32"]),
    ("sb3_ppo", ["agent.num_steps=16", "agent.update_epochs=2"]),
    ("sb3_tqc", ["agent.warmup_steps=400", "agent.hidden=[32,32]", "agent.batch_size=32", "agent.gradient_steps=1"]),
])
def test_short_run_writes_the_run_artifacts(tmp_path, name, overrides):
    assert agent_loop(name) == "sb3"
    cfg = config(f"agent={name}", "total_env_steps=1024", "eval_every=512", "checkpoint_every=512", "eval_episodes=4",
                 "video_episodes=1", "env.num_envs=8", *overrides)
    run_dir = train(cfg, tmp_path / "run")
    table = rows(run_dir)
    assert [int(r["env_steps"]) for r in table] == [0, 512, 1024]
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    assert (run_dir / "videos" / "eval_000001024.mp4").stat().st_size > 1000
    state = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)  # no unpickling of SB3 objects
    assert state["env_steps"] == 1024 and "policy" in state["agent"]["modules"]
    # a fresh agent restored from the checkpoint acts like the trained one
    env = gymnasium.make_vec("crlab/Reach-v0", num_envs=1, max_episode_steps=50)
    options = {k: v for k, v in cfg.agent.items() if k != "name"}
    agent = make_agent(name, options, env.single_observation_space, env.single_action_space, 8, 50, CPU)
    agent.load_state_dict(state["agent"])
    probe = {k: torch.randn(6, *s.shape) for k, s in env.single_observation_space.items()}
    first = agent.act(probe, deterministic=True)
    assert first.shape == (6, 2) and first.abs().max() <= 1
    agent.load_state_dict(torch.load(run_dir / "checkpoints" / "step_512.pt", weights_only=True)["agent"])
    assert not torch.allclose(agent.act(probe, deterministic=True), first)
    env.close()


def test_her_is_automatic_on_goal_envs_only():
    reach = gymnasium.make_vec("crlab/Reach-v0", num_envs=2, max_episode_steps=50)
    agent = make_agent("sb3_sac", {"buffer_size": 1000}, reach.single_observation_space, reach.single_action_space, 2, 50, CPU)
    agent.bind(reach)
    assert agent.her and type(agent.model.replay_buffer).__name__ == "HerReplayBuffer"
    assert agent.model.learning_starts >= 2 * 50
    agent = make_agent("sb3_sac", {"buffer_size": 1000}, reach.single_observation_space, reach.single_action_space, 2, 50, CPU)
    agent.bind(reach, her_allowed=False)  # a reward module is active: HER would relabel with the env's own reward
    assert not agent.her
    with pytest.raises(ValueError, match="GoalEnv"):
        box = gymnasium.spaces.Box(-1, 1, (3,))
        make_agent("sb3_sac", {"her": True}, box, reach.single_action_space, 2, 50, CPU).bind(reach)
    reach.close()


def test_text_observations_are_refused():
    space = gymnasium.spaces.Dict({"text": gymnasium.spaces.Text(10), "features": gymnasium.spaces.Box(-1, 1, (3,))})
    with pytest.raises(ValueError, match="Text"):
        make_agent("sb3_ppo", {}, space, gymnasium.spaces.Discrete(3), 1, 1, CPU)


def test_sb3_ppo_learns_the_negotiation_game():
    """SB3 PPO through our adapter on a text game's numeric views: clearly above a random policy (about 0.25)."""
    from envs.text_game import NumericView
    from scripts.bench.text import mean_return

    torch.manual_seed(0)
    env = NumericView(gymnasium.make_vec("crlab/Negotiation-v0", num_envs=32))
    agent = make_agent("sb3_ppo", {"num_steps": 32, "num_minibatches": 4, "update_epochs": 4, "hidden": [64, 64]},
                       env.single_observation_space, env.single_action_space, 32, 10, CPU)
    agent.bind(env).seed(0)
    agent.model.learn(total_timesteps=16_384)
    greedy = lambda obs: agent.act({k: torch.as_tensor(v) for k, v in obs.items()}, deterministic=True).numpy()  # noqa: E731
    random = mean_return(env, lambda obs: env.action_space.sample(), 256, 1)
    assert mean_return(env, greedy, 256, 1) > random + 0.3


def test_a_run_stopped_by_its_time_limit_ends_with_an_evaluation_and_a_checkpoint(tmp_path):
    cfg = config("agent=sb3_sac", "total_env_steps=1000000", "time_limit_s=3", "eval_every=1000000",
                 "checkpoint_every=1000000", "eval_episodes=2", "video_episodes=0", "env.num_envs=4",
                 "agent.warmup_steps=200", "agent.hidden=[16]", "agent.batch_size=16")
    run_dir = train(cfg, tmp_path / "run")
    table = rows(run_dir)
    last = int(table[-1]["env_steps"])
    assert len(table) == 2 and int(table[0]["env_steps"]) == 0 and last > 0
    assert torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)["env_steps"] == last


@pytest.mark.parametrize("env_id, kwargs", [("crlab/Reach-v0", {}), ("crlab/Push-v0", {"goal_space": "push_behind"})])
def test_her_relabels_with_future_goals_of_the_same_episode_and_the_envs_compute_reward(monkeypatch, env_id, kwargs):
    """HER's buffer (SB3's constructor path): a relabelled goal is an achieved goal of a later step of the transition's
    own episode ("future", 4 goals), and every sampled reward is the env's vectorized compute_reward on it; on Push in
    the push_behind goal space the goals are extended (block, pusher) and the reward reads the block part only."""
    from stable_baselines3.her import GoalSelectionStrategy

    env = gymnasium.make_vec(env_id, num_envs=2, max_episode_steps=10, **kwargs)
    goal_reward = type(env.unwrapped).compute_reward.fget(env.unwrapped)  # the vectorized reward of the env
    calls = []  # achieved-goal batch shapes that HER hands it (through SB3VecEnv.env_method)

    def counted(achieved: np.ndarray, desired: np.ndarray, info: Any) -> np.ndarray:
        calls.append(achieved.shape)
        return goal_reward(achieved, desired, info)

    monkeypatch.setattr(type(env.unwrapped), "compute_reward", property(lambda self: counted))
    agent = make_agent("sb3_sac", {"buffer_size": 1000, "warmup_steps": 20, "hidden": [16], "batch_size": 16},
                       env.single_observation_space, env.single_action_space, 2, 10, CPU)
    venv = agent.bind(env)
    venv.seed(0)
    agent.model.set_random_seed(0)
    agent.model.learn(total_timesteps=60)  # 3 finished episodes per copy; gradient steps (HER batches) from step 20
    buffer = agent.model.replay_buffer
    assert type(buffer).__name__ == "HerReplayBuffer" and buffer.env is venv
    assert buffer.n_sampled_goal == 4 and buffer.goal_selection_strategy == GoalSelectionStrategy.FUTURE
    assert calls and all(len(shape) == 2 and shape[0] > 1 for shape in calls)  # one batched call per sample

    np.random.seed(0)
    batch = buffer.sample(256)
    obs = {k: v.numpy() for k, v in batch.observations.items()}
    next_obs = {k: v.numpy() for k, v in batch.next_observations.items()}
    rows = buffer.pos  # 30 vector steps stored, none overwritten
    where = {(buffer.observations["observation"][t, e].tobytes(), buffer.actions[t, e].tobytes()): (t, e)
             for t in range(rows) for e in range(2)}
    relabelled = 0
    for i in range(256):
        t, e = where[obs["observation"][i].tobytes(), batch.actions[i].numpy().tobytes()]
        end = t + int(np.argmax(buffer.dones[t:rows, e]))  # the episode's last stored step (episodes end in `dones`)
        future = buffer.next_observations["achieved_goal"][t:end + 1, e]
        goal = obs["desired_goal"][i]
        np.testing.assert_array_equal(next_obs["desired_goal"][i], goal)
        if not np.array_equal(goal, buffer.observations["desired_goal"][t, e]):
            relabelled += 1
            assert (future == goal).all(axis=1).any(), (i, t, e)  # an achieved goal of this episode, not a past one
    assert 0.6 < relabelled / 256 < 0.95  # her_ratio = 4 / 5 of the batch
    expected = goal_reward(next_obs["achieved_goal"], obs["desired_goal"], [{}] * 256)
    np.testing.assert_array_equal(batch.rewards.numpy().reshape(-1), expected)
    assert (expected == 0).any() and (expected == -1).any()  # relabelling reached some goals; others missed
    env.close()


@pytest.mark.parametrize("name,options", [
    ("sb3_sac", {"buffer_size": 1000, "hidden": [16]}),
    ("sb3_sac", {"buffer_size": 1000, "hidden": [16], "ent_coef": "0.1"}),  # a fixed coefficient: another tensor
    ("sb3_tqc", {"buffer_size": 1000, "hidden": [16]}),
    ("sb3_ppo", {"hidden": [16]}),
])
def test_checkpoints_hold_what_sb3_saves_and_bind_keeps_them(name, options):
    """The state dicts and tensors of a checkpoint are those of SB3's own `save` (its private list, read here only
    to notice an SB3 change); `bind` constructs the model anew on the env and keeps a restored checkpoint."""
    reach = gymnasium.make_vec("crlab/Reach-v0", num_envs=2, max_episode_steps=50)
    spaces = reach.single_observation_space, reach.single_action_space
    trained = make_agent(name, options, *spaces, 2, 50, CPU)
    with torch.no_grad():  # weights unlike a fresh agent's
        for p in trained.model.policy.parameters():
            p.add_(torch.randn_like(p))
    state = trained.state_dict()
    state["num_timesteps"] = 123
    names, tensors = trained.model._get_torch_save_params()
    assert set(state["modules"]) == set(names) and set(state["tensors"]) == set(tensors or [])
    agent = make_agent(name, options, *spaces, 2, 50, CPU)
    agent.load_state_dict(state)  # before bind, as a resumed run does
    probe = {k: torch.randn(6, *s.shape) for k, s in reach.single_observation_space.items()}
    before = agent.act(probe, deterministic=True)
    model = agent.model
    agent.bind(reach)
    assert agent.model is not model and agent.env_steps == 123
    torch.testing.assert_close(agent.act(probe, deterministic=True), before, rtol=0, atol=0)
    for n, t in agent.saved_tensors().items():
        torch.testing.assert_close(t.detach().cpu(), state["tensors"][n])
    reach.close()


@pytest.mark.parametrize("name", ["sb3_sac", "sb3_tqc"])
def test_a_resumed_her_run_refills_its_buffer_before_it_trains(tmp_path, name):
    """SB3's replay buffer is not checkpointed: a resumed run warms up again (HER samples only finished episodes;
    training at once raised "Unable to sample before the end of the first episode")."""
    options = ["eval_every=512", "checkpoint_every=512", "eval_episodes=4", "video_episodes=0", "env.num_envs=8",
               "agent.warmup_steps=400", "agent.hidden=[32,32]", "agent.batch_size=32"]
    run_dir = train(config(f"agent={name}", "total_env_steps=1024", *options), tmp_path / "run")
    more = [f"resume={run_dir}", "total_env_steps=2048"]
    train(config(f"agent={name}", *options, *more), run_dir, more)
    assert [int(r["env_steps"]) for r in rows(run_dir)] == [0, 512, 1024, 1536, 2048]
