import math

import gymnasium
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import envs  # noqa: F401
from agents import make_agent, make_agent_config
from agents.crl import CRLConfig, critic_diag, critic_logits, infonce_loss
from agents.goal_buffer import GoalReplayBuffer, future_goal_offsets


def test_critic_logits_known_values():
    sa = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    g = torch.tensor([[1.0, 1.0], [3.0, 0.0]])
    torch.testing.assert_close(critic_logits(sa, g, "dot"), torch.tensor([[1.0, 3.0], [2.0, 0.0]]))
    torch.testing.assert_close(critic_logits(sa, g, "l2"), torch.tensor([[-1.0, -4.0], [-2.0, -13.0]]))
    torch.testing.assert_close(critic_logits(sa, g, "norm"), -torch.tensor([[1.0, 2.0], [math.sqrt(2), math.sqrt(13)]]), atol=1e-4, rtol=0)
    for energy in ("dot", "l2", "norm"):
        torch.testing.assert_close(critic_diag(sa, g, energy), critic_logits(sa, g, energy).diagonal())


def test_infonce_forward_backward_symmetric_on_hand_built_logits():
    logits = torch.tensor([[2.0, 0.0], [1.0, 3.0]])
    # forward: rows; positive on the diagonal
    fwd = 0.5 * ((math.log(math.exp(2) + 1) - 2) + (math.log(math.exp(1) + math.exp(3)) - 3))
    bwd = 0.5 * ((math.log(math.exp(2) + math.exp(1)) - 2) + (math.log(1 + math.exp(3)) - 3))
    assert infonce_loss(logits, "forward", 0.0).item() == pytest.approx(fwd, abs=1e-6)
    assert infonce_loss(logits, "backward", 0.0).item() == pytest.approx(bwd, abs=1e-6)
    assert infonce_loss(logits, "symmetric", 0.0).item() == pytest.approx(fwd + bwd, abs=1e-6)
    lse = torch.logsumexp(logits, 1)
    assert infonce_loss(logits, "forward", 0.5).item() == pytest.approx(fwd + 0.5 * lse.pow(2).mean().item(), abs=1e-6)
    # InfoNCE is minimised by a dominant diagonal
    assert infonce_loss(torch.eye(4) * 20, "symmetric", 0.0) < infonce_loss(torch.zeros(4, 4), "symmetric", 0.0)


def test_future_goal_offsets_follow_truncated_geometric():
    torch.manual_seed(0)
    length_left = torch.full((200_000,), 5)
    k = future_goal_offsets(length_left, 0.5)
    assert k.min() >= 1 and k.max() <= 5
    expected = np.array([0.5 ** (i - 1) for i in range(1, 6)])
    expected /= expected.sum()
    observed = np.bincount(k.numpy(), minlength=6)[1:] / len(k)
    np.testing.assert_allclose(observed, expected, atol=0.01)
    assert (future_goal_offsets(torch.ones(100, dtype=torch.long), 0.99) == 1).all()


def test_relabelled_goals_stay_inside_their_trajectory():
    torch.manual_seed(0)
    n, obs_dim = 3, 4
    buf = GoalReplayBuffer(obs_dim, 1, 2, n, capacity=1000, max_episode_steps=10, device=torch.device("cpu"))
    lengths = [10, 4, 7]  # copies end episodes at different times
    t = np.zeros(n, dtype=int)
    episode = np.zeros(n, dtype=int)
    for _ in range(30):
        done = np.array([t[i] + 1 == lengths[i] for i in range(n)])
        # encode (env, episode, time) in the data so samples can be traced back
        obs = torch.tensor([[i, episode[i], t[i], 0] for i in range(n)], dtype=torch.float32)
        next_goal = torch.tensor([[i * 100 + episode[i], t[i] + 1] for i in range(n)], dtype=torch.float32)
        buf.add(obs, torch.zeros(n, 1), next_goal, done)
        t += 1
        episode[done] += 1
        t[done] = 0
    batch = buf.sample(5000, discount=0.9)
    env, ep, time = batch["observation"][:, 0], batch["observation"][:, 1], batch["observation"][:, 2]
    goal_id, goal_time = batch["goal"][:, 0], batch["goal"][:, 1]
    assert torch.equal(goal_id, env * 100 + ep), "goal came from another trajectory"
    assert (goal_time >= time + 1).all(), "goal is not in the future"
    max_len = torch.tensor(lengths, dtype=torch.float32)[env.long()]
    assert (goal_time <= max_len).all(), "goal is past the end of the episode"
    now_id, now_time = batch["achieved_now"][:, 0], batch["achieved_now"][:, 1]
    assert torch.equal(now_id, env * 100 + ep) and torch.equal(now_time, time.clamp(min=1)), "not the state's own goal"


def test_config_validation_names_bad_values():
    with pytest.raises(ValueError, match="'lrr'.*valid options"):
        make_agent_config("crl", {"lrr": 1})
    with pytest.raises(ValueError, match="known agents"):
        make_agent_config("nope", {})
    with pytest.raises(ValueError, match="energy"):
        CRLConfig(energy="cosine")


def _agent(seed=0, **overrides):
    torch.manual_seed(seed)
    env = gymnasium.make_vec("crlab/Reach-v0", num_envs=4)
    cfg = {"hidden": [32, 32], "repr_dim": 8, "batch_size": 32, "warmup_steps": 0, **overrides}
    return env, make_agent("crl", cfg, env.single_observation_space, env.single_action_space, 4, 50, torch.device("cpu"))


def _collect(env, agent, steps):
    """`steps` vector steps of the agent's own actions into its buffer."""
    obs, _ = env.reset(seed=0)
    for _ in range(steps):
        o = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in obs.items()}
        a = agent.act(o)
        obs, r, term, trunc, info = env.step(a.numpy())
        agent.observe(o, a, torch.as_tensor(r), {k: torch.as_tensor(v, dtype=torch.float32) for k, v in obs.items()}, term, trunc)


def test_update_decreases_contrastive_loss_on_fixed_batch():
    env, agent = _agent()
    _collect(env, agent, 100)
    batch = agent.buffer.sample(32, 0.99)
    first = agent.update_on(batch)["critic_loss"].item()
    for _ in range(50):
        last = agent.update_on(batch)["critic_loss"].item()
    assert last < first - 0.5


def test_state_dict_round_trip_gives_same_actions():
    env, agent = _agent(seed=0)
    _, other = _agent(seed=1)
    obs = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in env.reset(seed=0)[0].items()}
    assert not torch.allclose(agent.act(obs, deterministic=True), other.act(obs, deterministic=True))
    other.load_state_dict(agent.state_dict())
    torch.testing.assert_close(agent.act(obs, deterministic=True), other.act(obs, deterministic=True))


def test_crl_rejects_non_goal_spaces():
    box = gymnasium.spaces.Box(-1, 1, (3,))
    with pytest.raises(ValueError, match="goal env"):
        make_agent("crl", {}, box, box, 1, 10, torch.device("cpu"))


def test_crl_reads_goals_in_the_env_goal_space():
    """On Push with goal_space=push_behind the stored goal is the env's achieved goal (block, pusher) and the actor
    is asked for the env's desired goal: crl adds nothing of its own."""
    env = gymnasium.make_vec("crlab/Push-v0", num_envs=2, goal_space="push_behind")
    agent = make_agent("crl", {"warmup_steps": 0, "hidden": [16], "batch_size": 8}, env.single_observation_space,
                       env.single_action_space, 2, 100, torch.device("cpu"))
    from scripts.run_setup import give_goal_space

    give_goal_space(agent, env)
    assert agent.goal_space.name == "push_behind" and agent.buffer.goal_space.task_dim == 2
    obs, _ = env.reset(seed=0)
    o = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in obs.items()}
    assert o["achieved_goal"].shape == (2, 4)
    torch.testing.assert_close(o["achieved_goal"][:, 2:], o["observation"][:, 0:2])
    a = agent.act(o)
    nxt, r, term, trunc, _ = env.step(a.numpy())
    n = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in nxt.items()}
    agent.observe(o, a, torch.as_tensor(r), n, term, trunc)
    torch.testing.assert_close(agent.buffer.next_achieved_goal[agent.buffer.slot, 0], n["achieved_goal"])
    env.close()


def test_the_sampler_puts_actor_goals_in_the_commanded_form_of_the_goal_space():
    """push_behind: a relabelled goal (block', pusher') becomes (block', block' - 0.05 * unit(block' - block now));
    object_and_effector: (block', block'); random goals are other rows' goals; no mixture: the critic's goals."""
    from agents.goal_buffer import GoalMix
    from envs.goal_space import GoalSpace

    goal = torch.tensor([[0.3, 0.4, 9.0, 9.0], [0.1, 0.1, 9.0, 9.0]])
    now = torch.tensor([[0.0, 0.0, 7.0, 7.0], [0.1, 0.1, 7.0, 7.0]])
    buf = GoalReplayBuffer(1, 1, 4, 1, 100, 5, torch.device("cpu"), GoalSpace("push_behind", 2, (0, 1), 0.05))
    expected = torch.tensor([[0.3, 0.4, 0.27, 0.36], [0.1, 0.1, 0.1, 0.1]])  # at its goal: the goal itself
    torch.testing.assert_close(buf.actor_goals(goal, now, GoalMix(actor_command_goals=1.0)), expected)
    buf.goal_space = GoalSpace("object_and_effector", 2, (0, 1))
    torch.testing.assert_close(buf.actor_goals(goal, now, GoalMix(actor_command_goals=1.0)), goal[:, [0, 1, 0, 1]])
    assert buf.actor_goals(goal, now, GoalMix()) is goal
    torch.manual_seed(0)
    many = torch.arange(64.0)[:, None].expand(64, 4)
    swapped = buf.actor_goals(many, many, GoalMix(actor_random_goals=1.0))
    assert sorted(swapped[:, 0].tolist()) == many[:, 0].tolist() and not torch.equal(swapped, many)


def test_agent_options_that_named_env_coordinates_point_at_the_env_goal_space():
    for old in ("goal_observation_indices", "command_from_goal", "command_source", "command_offset"):
        with pytest.raises(ValueError, match=f"agent.{old} no longer exists.*env.kwargs.goal_space="):
            make_agent_config("crl", {old: [0, 1] if "indices" in old or "from" in old else 1})
    with pytest.raises(ValueError, match="actor_random_goals"):
        CRLConfig(actor_random_goals=1.5)


def test_td_infonce_loss_on_a_hand_built_batch():
    from agents.td_infonce import td_infonce_loss

    next_logits = torch.zeros(2, 2)  # each row: ln 2 of cross-entropy against its own next state
    future_logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]], requires_grad=True)  # softmax [1/4, 3/4], [1/2, 1/2]
    target = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]], requires_grad=True)  # soft labels [1/2, 1/2], [3/4, 1/4]
    has_next = torch.tensor([1.0, 0.0])  # row 1 ended its episode: no bootstrapped term
    loss = td_infonce_loss(next_logits, future_logits, target, 0.9, has_next)
    expected = 0.1 * math.log(2.0) + 0.9 * 0.5 * math.log(16.0 / 3.0)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert target.grad is None or torch.all(target.grad == 0)  # the target critic's labels are constants
    # discount 0: plain InfoNCE against the next state
    only_next = td_infonce_loss(torch.eye(3) * 5, torch.randn(3, 3), torch.randn(3, 3), 0.0, torch.ones(3))
    assert only_next.item() == pytest.approx(F.cross_entropy(torch.eye(3) * 5, torch.arange(3)).item(), rel=1e-6)


def test_td_infonce_agent_updates_and_round_trips():
    env, agent = _agent(contrastive_loss="td_infonce")
    _collect(env, agent, 60)
    batch = agent.buffer.sample(32, 0.99)
    assert torch.equal(batch["has_next"], (batch["t"] + 1 < batch["length"]).float())
    before = [p.clone() for p in agent.target_critic.parameters()]
    metrics = agent.update_on(batch)
    assert torch.isfinite(metrics["critic_loss"])
    moved = [not torch.equal(b, p) for b, p in zip(before, agent.target_critic.parameters())]
    assert any(moved)  # Polyak-averaged towards the critic
    _, other = _agent(seed=1, contrastive_loss="td_infonce")
    other.load_state_dict(agent.state_dict())
    for p, q in zip(agent.target_critic.parameters(), other.target_critic.parameters()):
        torch.testing.assert_close(p, q)


def test_motion_share_draws_episodes_by_how_far_their_achieved_goal_moved():
    """Two copies, one episode each: copy 0's object never moves, copy 1's moves 0.1 per step. motion share 1 draws
    only copy 1's episode; 0.5 about three quarters of the batch (half uniform + half by motion); before anything
    moved, the draw stays uniform. Only the goal space's task part (the object) counts as motion."""
    from agents.goal_buffer import GoalMix
    from envs.goal_space import GoalSpace

    buf = GoalReplayBuffer(1, 1, 3, 2, capacity=100, max_episode_steps=5, device=torch.device("cpu"),
                           goal_space=GoalSpace("object_and_effector", 2, (0,)))
    for t in range(5):
        goal = torch.tensor([[0.0, 0.0, 9.0 * (t + 1)], [0.1 * t, 0.0, 0.0]])  # the third (added) coordinate does not count
        buf.add(torch.zeros(2, 1), torch.zeros(2, 1), goal, np.array([t == 4, t == 4]))
    torch.testing.assert_close(buf.motion[:2], torch.tensor([0.0, 0.4]))
    torch.manual_seed(0)
    assert (buf.sample(512, 0.9, GoalMix(goal_motion_share=1.0))["goal"][:, 0] > 0).float().mean() > 0.95  # copy 1
    share = (buf.sample(4000, 0.9, GoalMix(goal_motion_share=0.5))["goal"][:, 2] == 0).float().mean()  # copy 1's slot
    assert abs(share - 0.75) < 0.03
    buf.motion.zero_()
    assert abs((buf.sample(4000, 0.9, GoalMix(goal_motion_share=1.0))["goal"][:, 2] == 0).float().mean() - 0.5) < 0.03


def test_buffer_slots_recycle_with_uneven_episode_ends():
    """Copy 0 ends an episode every 2 steps, copy 1 every 5, in a 4-slot buffer that wraps: each closed slot holds
    its episode's steps (observation = the step number), its length, and the path length of its goal over its own
    steps only (the slot's older, longer episode beyond them does not count)."""
    buf = GoalReplayBuffer(1, 1, 2, 2, capacity=20, max_episode_steps=5, device=torch.device("cpu"))
    closed = {}  # slot -> (copy, first step, length) of the last episode closed there
    start = [0, 0]
    for step in range(12):
        obs = torch.tensor([[float(step)], [float(step)]])
        goal = torch.tensor([[0.1 * step, 0.0], [0.0, 0.3 * step]])
        done = np.array([step % 2 == 1, step % 5 == 4])
        slots = buf.slot.copy()
        buf.add(obs, torch.zeros(2, 1), goal, done)
        for copy in np.flatnonzero(done):
            closed[int(slots[copy])] = (copy, start[copy], step + 1 - start[copy])
            start[copy] = step + 1
    assert buf.num_episodes == 8 and buf.num_slots == 4
    open_slots = set(buf.slot.tolist())
    for slot, (copy, first, length) in closed.items():
        if slot in open_slots:  # reopened since: not sampleable
            assert buf.lengths[slot] == 0
            continue
        assert buf.lengths[slot] == length
        assert buf.observation[slot, :length, 0].tolist() == list(range(first, first + length))
        torch.testing.assert_close(buf.motion[slot], torch.tensor((0.1, 0.3)[copy] * (length - 1)))
