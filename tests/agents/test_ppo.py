"""PPO: losses and GAE on hand-built batches, observation front end, checkpoint round trip, short learning runs."""

import io

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch.distributions import Categorical, Independent, Normal

from agents import make_agent
from agents.policy_inputs import policy_input_keys
from agents.ppo import PPOAgent, PPOConfig, clipped_surrogate_loss, generalized_advantage_estimate, value_loss
from agents.ppo_policy import ActorCritic, Tanh

CPU = torch.device("cpu")
GOAL_SPACE = spaces.Dict({
    "observation": spaces.Box(-np.inf, np.inf, (3,)),
    "achieved_goal": spaces.Box(-np.inf, np.inf, (2,)),
    "desired_goal": spaces.Box(-1.0, 1.0, (2,)),
})


def test_clipped_surrogate_known_answer():
    ratio = torch.tensor([0.5, 1.5, 1.1, 0.7])
    advantages = torch.tensor([1.0, 1.0, -1.0, -1.0])
    log_ratio = ratio.log().requires_grad_()
    loss = clipped_surrogate_loss(log_ratio, advantages, clip_coef=0.2)
    # per sample -min(rA, clip(r)A): -min(.5,.8) -min(1.5,1.2) -min(-1.1,-1.1) -min(-.7,-.8)
    assert loss.item() == pytest.approx((-0.5 - 1.2 + 1.1 + 0.8) / 4)
    loss.backward()
    # the clipped terms (r=1.5 with A>0, r=0.7 with A<0) pass no gradient; d/dlogr (-rA/4) = -rA/4 otherwise
    assert log_ratio.grad.tolist() == pytest.approx([-0.5 / 4, 0.0, 1.1 / 4, 0.0])


def test_value_loss_clipping_known_answer():
    new, old, returns = torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5]), torch.tensor([2.0, 0.0])
    # clipped predictions 0.7 and 0.3: max((1-2)^2, (0.7-2)^2) = 1.69, max(0, 0.09) = 0.09
    assert value_loss(new, old, returns, 0.2).item() == pytest.approx(0.5 * (1.69 + 0.09) / 2)
    assert value_loss(new, old, returns, None).item() == pytest.approx(0.5 * (1.0 + 0.0) / 2)


def test_gae_with_terminated_and_truncated_steps():
    gamma, lam = 0.9, 0.8
    # env 0: continue, truncated (bootstrap V(final obs)=4), terminated (V'=7 ignored)
    # env 1: terminated (V'=9 ignored), continue, continue at the rollout's end (bootstrap V'=2)
    rewards = torch.tensor([[1.0, 1.0], [2.0, 0.0], [3.0, 1.0]])
    values = torch.tensor([[0.5, 2.0], [1.0, 0.0], [1.5, 1.0]])
    next_values = torch.tensor([[1.0, 9.0], [4.0, 1.0], [7.0, 2.0]])
    terminated = torch.tensor([[False, True], [False, False], [True, False]])
    truncated = torch.tensor([[False, False], [True, False], [False, False]])
    adv, ret = generalized_advantage_estimate(rewards, values, next_values, terminated, truncated, gamma, lam)
    d00, d10, d20 = 1 + 0.9 * 1.0 - 0.5, 2 + 0.9 * 4.0 - 1.0, 3 - 1.5
    d01, d11, d21 = 1 - 2.0, 0 + 0.9 * 1.0 - 0.0, 1 + 0.9 * 2.0 - 1.0
    a21, a20 = d21, d20
    a11, a10 = d11 + gamma * lam * a21, d10
    a01, a00 = d01, d00 + gamma * lam * a10
    expected = torch.tensor([[a00, a01], [a10, a11], [a20, a21]])
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, expected + values)


def test_closed_form_log_prob_and_entropy_match_torch_distributions():
    torch.manual_seed(0)
    x = {"vector": torch.randn(5, 4)}
    shapes = {"vector": ((4,), torch.float32)}
    gauss = ActorCritic(shapes, spaces.Box(-1, 1, (3,)), [8], init_log_std=0.0)
    with torch.no_grad():
        gauss.actor_log_std.copy_(torch.tensor([-0.5, 0.0, 0.3]))
    out, _ = gauss(x)
    action = gauss.sample(out)
    pi = Independent(Normal(out, gauss.actor_log_std.exp().expand_as(out)), 1)
    log_prob, entropy = gauss.log_prob_entropy(out, action)
    torch.testing.assert_close(log_prob, pi.log_prob(action))
    torch.testing.assert_close(entropy, pi.entropy().mean())
    torch.testing.assert_close(gauss.sample(out, deterministic=True), out)

    cat = ActorCritic(shapes, spaces.Discrete(3), [8], init_log_std=0.0)
    logits, _ = cat(x)
    action = cat.sample(logits)
    log_prob, entropy = cat.log_prob_entropy(logits, action)
    torch.testing.assert_close(log_prob, Categorical(logits=logits).log_prob(action))
    torch.testing.assert_close(entropy, Categorical(logits=logits).entropy().mean())
    assert cat.sample(logits, deterministic=True).tolist() == logits.argmax(-1).tolist()


def test_tanh_matches_torch_tanh():
    x = torch.linspace(-20, 20, 1001)
    torch.testing.assert_close(Tanh()(x), torch.tanh(x), atol=1e-6, rtol=0)


def test_policy_input_keys():
    assert policy_input_keys(GOAL_SPACE) == ["observation", "desired_goal"]
    plain = spaces.Dict({"z": spaces.Box(0, 1, (2,)), "a": spaces.Box(0, 1, (1, 2))})
    assert policy_input_keys(plain) == ["a", "z"]
    agent = PPOAgent(plain, spaces.Discrete(3), PPOConfig(num_steps=2), 4, 10, CPU)
    assert agent.obs_input.shapes == {"vector": ((4,), torch.float32)}


def test_update_waits_for_full_rollout_and_returns_detached_scalars():
    cfg = PPOConfig(num_steps=3, num_minibatches=2, update_epochs=2)
    agent = PPOAgent(GOAL_SPACE, spaces.Box(-1, 1, (2,)), cfg, 4, 10, CPU)
    obs = {k: torch.randn(4, *s.shape) for k, s in GOAL_SPACE.items()}
    done = np.zeros(4, dtype=bool)
    for step in range(3):
        action = agent.act(obs)
        agent.observe(obs, action, torch.randn(4), obs, done, done)
        metrics = agent.update()
        assert (metrics == {}) == (step < 2)
    assert all(v.ndim == 0 and not v.requires_grad for v in metrics.values())
    assert {"policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac"} <= set(metrics)


def test_state_dict_round_trip_restores_deterministic_actions():
    torch.manual_seed(0)
    cfg = PPOConfig(num_steps=4, num_minibatches=2, update_epochs=2, lr=1e-2)
    agent = PPOAgent(GOAL_SPACE, spaces.Box(-1, 1, (2,)), cfg, 8, 10, CPU)
    done = np.zeros(8, dtype=bool)
    for _ in range(8):  # two updates: weights and observation statistics move away from their initial values
        obs = {k: 3 + 2 * torch.randn(8, *s.shape) for k, s in GOAL_SPACE.items()}
        agent.observe(obs, agent.act(obs), torch.randn(8), obs, done, done)
        agent.update()
    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(1)
    restored = PPOAgent(GOAL_SPACE, spaces.Box(-1, 1, (2,)), cfg, 8, 10, CPU)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    probe = {k: 3 + 2 * torch.randn(16, *s.shape) for k, s in GOAL_SPACE.items()}
    torch.testing.assert_close(restored.act(probe, deterministic=True), agent.act(probe, deterministic=True))
    assert restored.iteration == agent.iteration == 2
    autograd = PPOAgent(GOAL_SPACE, spaces.Box(-1, 1, (2,)), PPOConfig(fused_gradients=False), 8, 10, CPU)
    with pytest.raises(ValueError, match="resume with fused_gradients=true"):
        autograd.load_state_dict(agent.state_dict())


@pytest.fixture
def one_thread():
    """Tiny networks gain nothing from intra-op threads, and on a shared CPU they can make a run 20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_one_step_task(agent: PPOAgent, sample_obs, reward_fn, updates: int, num_envs: int) -> float:
    """Train on 1-step episodes (every step terminates); return the deterministic policy's mean reward."""
    done, not_done = np.ones(num_envs, dtype=bool), np.zeros(num_envs, dtype=bool)
    for _ in range(updates * agent.cfg.num_steps):
        obs = sample_obs(num_envs)
        action = agent.act(obs)
        agent.observe(obs, action, reward_fn(obs, action), obs, done, not_done)
        agent.update()
    probe = sample_obs(1000)
    return reward_fn(probe, agent.act(probe, deterministic=True)).mean().item()


def test_learns_continuous_goal_matching(one_thread):
    """Dict obs, Box actions: reward -|a - desired_goal|_1. Zero action scores -1.0 on average, random worse."""
    torch.manual_seed(0)
    cfg = PPOConfig(num_steps=8, lr=3e-3, update_epochs=4, anneal_lr=False)
    agent = make_agent("ppo", vars(cfg), GOAL_SPACE, spaces.Box(-1, 1, (2,)), 64, 1, CPU)

    def sample_obs(n):
        goal = torch.rand(n, 2) * 2 - 1
        return {"observation": torch.randn(n, 3), "achieved_goal": torch.zeros(n, 2), "desired_goal": goal}

    def reward_fn(obs, action):
        return -(action.clamp(-1, 1) - obs["desired_goal"]).abs().sum(-1)

    assert run_one_step_task(agent, sample_obs, reward_fn, updates=30, num_envs=64) > -0.4


def test_learns_discrete_contextual_bandit(one_thread):
    """Box obs, Discrete actions: reward 1 for the index of the largest feature; random scores 0.25."""
    torch.manual_seed(0)
    cfg = PPOConfig(num_steps=8, lr=3e-3, update_epochs=4, anneal_lr=False)
    agent = PPOAgent(spaces.Box(-np.inf, np.inf, (4,)), spaces.Discrete(4), cfg, 64, 1, CPU)
    reward_fn = lambda obs, action: (action == obs.argmax(-1)).float()  # noqa: E731
    assert run_one_step_task(agent, lambda n: torch.randn(n, 4), reward_fn, updates=15, num_envs=64) > 0.8


def test_pixel_goal_observations_feed_a_cnn_and_the_goal_vector():
    import gymnasium

    import envs  # noqa: F401  (registers crlab/*)

    env = gymnasium.make("crlab/Reach-v0", obs_type="pixels", image_size=32, frame_stack=3)
    agent = make_agent("ppo", {"num_steps": 8, "num_conv_layers": 2}, env.observation_space, env.action_space, 1, 50, CPU)
    assert agent.obs_input.shapes == {"pixels": ((9, 32, 32), torch.uint8), "vector": ((2,), torch.float32)}
    assert agent.policy.pixel_encoder is not None
    env.close()


def test_learns_from_pixels(one_thread):
    """Images (3, 16, 16) with one bright square in the left or right half; reward 1 for naming the half."""
    torch.manual_seed(0)
    space = spaces.Box(0, 255, (3, 16, 16), np.uint8)
    cfg = PPOConfig(num_steps=4, lr=1e-3, update_epochs=4, anneal_lr=False, num_conv_layers=2, num_filters=8,
                    feature_dim=16)
    agent = PPOAgent(space, spaces.Discrete(2), cfg, 64, 1, CPU)

    def sample_obs(n):
        side = torch.randint(0, 2, (n,))
        images = torch.zeros(n, 3, 16, 16)
        rows = torch.randint(0, 12, (n,))
        cols = torch.randint(0, 4, (n,)) + 8 * side
        for i in range(n):
            images[i, :, rows[i]:rows[i] + 4, cols[i]:cols[i] + 4] = 255.0
        return images

    def reward_fn(obs, action):
        side = (obs[:, 0].sum(1).argmax(-1) >= 8).long()  # column of the square's left edge
        return (action == side).float()

    assert run_one_step_task(agent, sample_obs, reward_fn, updates=15, num_envs=64) > 0.8


FRUITS = ["apple", "banana", "cherry", "grape", "mango", "pear"]
TOOLS = ["hammer", "wrench", "saw", "drill", "screwdriver", "pliers"]
TEXT_SPACE = spaces.Dict({
    "text": spaces.Text(200), "options": spaces.Text(200), "features": spaces.Box(0, 1, (3, 2)),
    "hint": spaces.Box(0, 1, (1,)),
})


def fruit_obs(n: int, generator: np.random.Generator) -> tuple[dict, torch.Tensor]:
    """'Pick the fruit' among one fruit and two tools in random order; returns obs and the fruit's index."""
    options, answer = [], []
    for _ in range(n):
        items = [generator.choice(FRUITS), *generator.choice(TOOLS, 2, replace=False)]
        order = generator.permutation(3)
        options.append("\n".join(f"({i}) the {items[j]}" for i, j in enumerate(order)))
        answer.append(int(np.argmin(order)))  # the position of items[0]
    obs = {"text": ["Please hand me something to eat."] * n, "options": options,
           "features": torch.rand(n, 3, 2), "hint": torch.rand(n, 1)}
    return obs, torch.tensor(answer)


def test_text_policy_inputs_split_context_options_and_option_rows():
    agent = PPOAgent(TEXT_SPACE, spaces.Discrete(3), PPOConfig(num_steps=2, text_encoder="minilm"), 4, 1, CPU)
    shapes = agent.obs_input.shapes
    assert shapes["context"] == ((384,), torch.float32) and shapes["options"] == ((3, 384), torch.float32)
    assert shapes["option_vector"] == ((3, 2), torch.float32) and shapes["vector"] == ((1,), torch.float32)
    obs, _ = fruit_obs(4, np.random.default_rng(0))
    inputs = agent.obs_input(obs)
    line = obs["options"][1].split("\n")[2]
    torch.testing.assert_close(inputs["options"][1, 2], agent.obs_input.embed([line])[0])
    asking = {**obs, "text": [f"Please hand me something to eat.\n{o}" for o in obs["options"]]}
    torch.testing.assert_close(agent.obs_input(asking)["context"], inputs["context"])  # option lines are not context
    with pytest.raises(ValueError, match="expected 3 option lines"):
        agent.obs_input({**obs, "options": ["(0) only one"] * 4})
    with pytest.raises(ValueError, match="Discrete"):
        PPOAgent(TEXT_SPACE, spaces.Box(-1, 1, (3,)), PPOConfig(text_encoder="minilm"), 4, 1, CPU)


def test_text_policy_learns_to_pick_the_option_the_text_asks_for(one_thread):
    """Scores option texts with the bundled sentence encoder; random picks the fruit 1/3 of the time."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = PPOConfig(num_steps=4, lr=3e-3, update_epochs=4, anneal_lr=False, text_encoder="minilm")
    agent = PPOAgent(TEXT_SPACE, spaces.Discrete(3), cfg, 32, 1, CPU)
    done, not_done = np.ones(32, dtype=bool), np.zeros(32, dtype=bool)
    for _ in range(10 * cfg.num_steps):
        obs, answer = fruit_obs(32, rng)
        action = agent.act(obs)
        agent.observe(obs, action, (action == answer).float(), obs, done, not_done)
        agent.update()
    obs, answer = fruit_obs(500, rng)
    assert (agent.act(obs, deterministic=True) == answer).float().mean() > 0.9


def fill_rollout(agent: PPOAgent, seed: int) -> None:
    """One full rollout of off-centre observations (mean 3, std 2), so the normalisation statistics matter."""
    g = torch.Generator().manual_seed(seed)
    done = np.zeros(agent.num_envs, dtype=bool)
    for step in range(agent.cfg.num_steps):
        obs = {k: 3 + 2 * torch.randn(agent.num_envs, *s.shape, generator=g) for k, s in GOAL_SPACE.items()}
        agent.observe(obs, agent.act(obs), torch.randn(agent.num_envs, generator=g), obs, done, done | (step % 3 == 2))


@pytest.mark.parametrize("fused", [True, False])
def test_first_minibatch_replays_the_acting_policy(fused):
    """lr 0: the policy never changes, so every ratio is 1 (the stored inputs are normalised as when acting)."""
    torch.manual_seed(0)
    cfg = PPOConfig(num_steps=4, num_minibatches=2, update_epochs=2, lr=0.0, fused_gradients=fused)
    agent = PPOAgent(GOAL_SPACE, spaces.Box(-1, 1, (2,)), cfg, 8, 10, CPU)
    assert agent.fused == fused
    for seed in range(2):  # the second rollout acts with statistics updated by the first update
        fill_rollout(agent, seed)
        metrics = agent.update()
        assert metrics["clip_frac"].item() == 0.0 and abs(metrics["approx_kl"].item()) < 1e-6
    assert agent.obs_input.vector_stats.count.item() == pytest.approx(2 * 4 * 8, abs=1e-3)


def train_side_by_side(*cfgs: PPOConfig, action_space: spaces.Space = spaces.Box(-1, 1, (2,))) -> list[PPOAgent]:
    """Agents built from the same seed, each updated on the same two rollouts (same actions, minibatch orders)."""
    agents = []
    for cfg in cfgs:
        torch.manual_seed(0)
        agents.append(PPOAgent(GOAL_SPACE, action_space, cfg, 8, 10, CPU))
    for agent in agents:
        torch.manual_seed(1)
        for seed in range(2):
            fill_rollout(agent, seed)
            agent.update()
    return agents


def assert_same_parameters(a: PPOAgent, b: PPOAgent) -> None:
    mine, theirs = dict(a.policy.named_parameters()), dict(b.policy.named_parameters())
    assert mine.keys() == theirs.keys()
    for name in mine:
        torch.testing.assert_close(mine[name], theirs[name], rtol=1e-4, atol=1e-5, msg=name)


def test_fused_and_autograd_agents_take_the_same_steps():
    fused, plain = train_side_by_side(*(PPOConfig(num_steps=4, num_minibatches=2, update_epochs=3, lr=1e-2,
                                                  fused_gradients=f) for f in (True, False)))
    assert_same_parameters(fused, plain)
    torch.manual_seed(0)
    initial = PPOAgent(GOAL_SPACE, spaces.Box(-1, 1, (2,)), PPOConfig(num_steps=4), 8, 10, CPU)
    assert (fused.policy.actor[0].weight - initial.policy.actor[0].weight).abs().max() > 1e-3  # the steps moved it


@pytest.mark.parametrize("action_space", [spaces.Box(-1, 1, (2,)), spaces.Discrete(3)], ids=["box", "discrete"])
def test_compiled_agent_takes_the_same_steps(one_thread, action_space):
    """compile=true runs the same step through torch.compile (generated C++ on CPU): same actions and updates."""
    compiled, eager = train_side_by_side(*(PPOConfig(num_steps=4, num_minibatches=2, update_epochs=3, lr=1e-2,
                                                     ent_coef=0.01, compile=c) for c in (True, False)),
                                         action_space=action_space)
    assert_same_parameters(compiled, eager)
    probe = {k: torch.randn(5, *s.shape) for k, s in GOAL_SPACE.items()}
    torch.testing.assert_close(compiled.act(probe, deterministic=True), eager.act(probe, deterministic=True))
    assert compiled.fused_step.step.item() == 2 * 3 * 2  # two updates of 3 epochs x 2 minibatches


def test_compile_needs_the_closed_form_step():
    with pytest.raises(ValueError, match="compile=true needs the closed-form step.*fused_gradients=False"):
        PPOAgent(GOAL_SPACE, spaces.Box(-1, 1, (2,)), PPOConfig(compile=True, fused_gradients=False), 2, 10, CPU)
