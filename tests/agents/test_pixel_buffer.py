"""The pixel replay buffer stores each frame once and gives back exactly the transitions it was handed."""

import numpy as np
import pytest
import torch

from agents.pixel_buffer import PixelReplayBuffer

CPU = torch.device("cpu")


def recorded_stream(num_envs: int, k: int, steps: int, seed: int, max_len: int = 6):
    """A frame-stacked env's vector steps: random 3x4x4 frames, stacks padded with the first frame at resets,
    episodes of random length ending in a termination or a truncation, the true final observation at the end."""
    rng = np.random.default_rng(seed)
    frame = lambda: torch.as_tensor(rng.integers(0, 256, (3, 4, 4)), dtype=torch.uint8)  # noqa: E731
    stacks = [[frame()] * k for _ in range(num_envs)]
    length = rng.integers(1, max_len + 1, num_envs)
    t = np.zeros(num_envs, dtype=int)
    for _ in range(steps):
        obs = torch.stack([torch.cat(s) for s in stacks])
        nxt = [s[1:] + [frame()] for s in stacks]
        next_obs = torch.stack([torch.cat(s) for s in nxt])
        t += 1
        end = t >= length
        terminated = end & (rng.random(num_envs) < 0.5)
        action, reward = torch.as_tensor(rng.normal(size=(num_envs, 2)), dtype=torch.float32), torch.as_tensor(rng.normal(size=num_envs))
        yield obs, action, reward, next_obs, terminated, end
        for i in range(num_envs):
            if end[i]:
                stacks[i], t[i], length[i] = [frame()] * k, 0, rng.integers(1, max_len + 1)
            else:
                stacks[i] = nxt[i]


def reference_ring(stream, capacity: int):
    """The transitions a buffer of `capacity` rows holds, by slot (the old buffer's layout: row = transition)."""
    ring, pos = [None] * capacity, 0
    for obs, action, reward, next_obs, terminated, _ in stream:
        for i in range(len(obs)):
            ring[pos] = (obs[i], action[i], float(reward[i]), next_obs[i], 0.0 if terminated[i] else 1.0)
            pos = (pos + 1) % capacity
    return [r for r in ring if r is not None]


@pytest.mark.parametrize("capacity", [500, 37])  # never full / wrapped many times
def test_every_slot_and_every_sampled_batch_is_the_recorded_transition(capacity):
    stream = list(recorded_stream(num_envs=3, k=3, steps=60, seed=0))
    buffer = PixelReplayBuffer((9, 4, 4), 2, capacity, CPU, num_envs=3, episode_steps=6)
    for obs, action, reward, next_obs, terminated, end in stream:
        buffer.add(obs, action, reward, next_obs, terminated, episode_end=end)
    reference = reference_ring(stream, capacity)
    assert len(buffer) == len(reference) == min(capacity, 180) and buffer.num_invalid == 0
    obs, next_obs = buffer._gather(torch.arange(len(buffer)))
    for slot, (r_obs, r_action, r_reward, r_next, r_not_done) in enumerate(reference):
        assert torch.equal(obs[slot], r_obs) and torch.equal(next_obs[slot], r_next)
        assert torch.equal(buffer.action[slot], r_action) and buffer.reward[slot].item() == pytest.approx(r_reward)
        assert buffer.not_done[slot].item() == r_not_done
    torch.manual_seed(3)
    batch = buffer.sample(64)
    torch.manual_seed(3)
    idx = torch.randint(0, len(buffer), (64,))  # the old buffer's draw: the same batches for the same seed
    assert torch.equal(batch["obs"], torch.stack([reference[i][0] for i in idx]))
    assert torch.equal(batch["next_obs"], torch.stack([reference[i][3] for i in idx]))
    # each frame once: one per transition plus each episode's first stack
    starts = 3 + sum(int(end.sum()) for *_, end in stream[:-1])
    assert buffer.frames_written == 180 + 3 * starts


def test_short_episodes_that_wrap_the_frame_store_leave_only_intact_transitions_in_sampling():
    stream = list(recorded_stream(num_envs=2, k=3, steps=200, seed=1, max_len=2))
    buffer = PixelReplayBuffer((9, 4, 4), 2, 50, CPU, num_envs=2, episode_steps=100)  # sized for long episodes
    for obs, action, reward, next_obs, terminated, end in stream:
        buffer.add(obs, action, reward, next_obs, terminated, episode_end=end)
    reference = reference_ring(stream, 50)
    assert buffer.num_invalid > 0
    batch = buffer.sample(256)
    live = {(bytes(o.numpy()), bytes(n.numpy())) for o, _, _, n, _ in reference}
    assert all((bytes(o.numpy()), bytes(n.numpy())) in live for o, n in zip(batch["obs"], batch["next_obs"]))


def test_unshifted_next_observations_and_a_buffer_too_big_for_memory_are_refused():
    buffer = PixelReplayBuffer((9, 4, 4), 2, 10, CPU, num_envs=2)
    obs = torch.randint(0, 255, (2, 9, 4, 4), dtype=torch.uint8)
    with pytest.raises(ValueError, match="shifted"):
        buffer.add(obs, torch.zeros(2, 2), torch.zeros(2), obs, np.zeros(2, dtype=bool))
    with pytest.raises(ValueError, match=r"buffer_size=1000000000000.*GB.*agent.buffer_size"):
        PixelReplayBuffer((9, 100, 100), 2, 10**12, CPU, num_envs=2)


def test_a_100k_buffer_of_100px_stacks_takes_under_3_5_gb():
    meta = torch.device("meta")  # tensors with shapes and no storage: the sizes without the memory
    buffer = PixelReplayBuffer((9, 100, 100), 1, 100_000, meta, num_envs=4, episode_steps=125)  # dmc cartpole
    tensors = [buffer.frames, buffer.frame_rows, buffer.action, buffer.reward, buffer.not_done, buffer.valid]
    assert sum(t.numel() * t.element_size() for t in tensors) == buffer.nbytes(action_dim=1) < 3.5 * 2**30
    assert buffer.frame_capacity < 1.03 * 100_000  # one frame per transition, 3 more per 125-step episode
