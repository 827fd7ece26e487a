"""Negotiation: split a pot of items with a partner in the style a user asks for in words.

After the negotiation task of "Reward Design with Language Models" (Kwon et al., 2023), where the user's
objective is a style stated in language and the reward says whether the agent's negotiation showed it. Here the
styles follow the paper: *competitive* (end with a deal that gives you more than your partner), *push-over*
(a deal that gives you less), *stubborn* (make the same proposal every turn), *versatile* (never repeat a
proposal, at least two of them), plus *fair* (an exactly even split).

Each of up to `ROUNDS` rounds the partner offers the agent a share of the pot; the agent accepts it (action 0)
or proposes that the partner gets `PROPOSAL_SHARES[a - 1]` of it (actions 1-5). The partner accepts a proposal
that gives it at least its current demand; its demand starts at 1/2 or 3/4 of the pot and drops by 1/4 per
round down to 1/4. The episode ends at a deal or after `ROUNDS` rounds; the reward is 1 at the end if the
stated objective was met, else 0.

Observation: `text` (objective, state, options), `options` (one per line), `objective` (5,) one-hot,
`state` (7,): round / ROUNDS, the partner's offer to the agent as a share, proposals made so far per share / ROUNDS.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from envs.text_game import TextGameEnv, TextGameTask, TextGameVectorEnv, text_batch, text_space

OBJECTIVES = ("competitive", "push-over", "fair", "stubborn", "versatile")
OBJECTIVE_TEXTS = {
    "competitive": ["Be competitive: end with a deal that gives you more than your partner.",
                    "I want you to drive a hard bargain and walk away with the bigger share."],
    "push-over": ["Be a push-over: end with a deal that gives your partner more than you.",
                  "Be generous; let your partner take the bigger share."],
    "fair": ["Be fair: end with a deal that splits the items exactly evenly.",
             "I want a fair outcome: a fifty-fifty deal."],
    "stubborn": ["Be stubborn: make the same proposal every single turn.",
                 "Never budge: keep repeating exactly the same offer."],
    "versatile": ["Be versatile: never make the same proposal twice, and make at least two.",
                  "Keep it fresh: try different proposals, never repeating one."],
}
PROPOSAL_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)  # the partner's share in each proposal (actions 1-5)
OPENING_DEMANDS = (0.5, 0.75)
DEMAND_FLOOR, CONCESSION = 0.25, 0.25
ROUNDS = 3
POT_SIZES = (4, 8, 12)
ITEMS = ("coins", "books", "hats", "balls")
PARTNERS = ("Alice", "Bob", "Carol", "Dan", "Erin")
NUM_ACTIONS = 1 + len(PROPOSAL_SHARES)


def objective_met(objective: str, deal_share: float | None, proposals: list[int]) -> bool:
    """Whether an ended negotiation meets the objective; `deal_share` is the agent's share (None: no deal)."""
    if objective == "competitive":
        return deal_share is not None and deal_share > 0.5
    if objective == "push-over":
        return deal_share is not None and deal_share < 0.5
    if objective == "fair":
        return deal_share is not None and deal_share == 0.5
    if objective == "stubborn":
        return len(proposals) >= 2 and len(set(proposals)) == 1
    return len(proposals) >= 2 and len(set(proposals)) == len(proposals)  # versatile


class NegotiationTask(TextGameTask):
    """N negotiations, each with its own stated objective, pot, items and partner."""

    def __init__(self, num_envs: int = 1) -> None:
        super().__init__(num_envs)
        self.observation_space = spaces.Dict(
            {
                "text": text_space(1024),
                "options": text_space(512),
                "objective": spaces.Box(0.0, 1.0, (len(OBJECTIVES),), np.float32),
                "state": spaces.Box(0.0, 1.0, (2 + len(PROPOSAL_SHARES),), np.float32),
            }
        )
        self.action_space = spaces.Discrete(NUM_ACTIONS)
        self.objective = np.zeros(num_envs, dtype=np.int64)
        self.objective_texts = [""] * num_envs
        self.pot = np.zeros(num_envs, dtype=np.int64)
        self.items = [""] * num_envs
        self.partners = [""] * num_envs
        self.round = np.zeros(num_envs, dtype=np.int64)
        self.demand = np.zeros(num_envs)  # the partner's current demand, a share of the pot
        self.proposals: list[list[int]] = [[] for _ in range(num_envs)]  # indices into PROPOSAL_SHARES
        self.outcome = [""] * num_envs  # "" while negotiating

    def reset_copies(self, copies: np.ndarray) -> None:
        for i in copies:
            rng = self.rngs[i]
            self.objective[i] = rng.integers(len(OBJECTIVES))
            texts = OBJECTIVE_TEXTS[OBJECTIVES[self.objective[i]]]
            self.objective_texts[i] = texts[rng.integers(len(texts))]
            self.pot[i] = POT_SIZES[rng.integers(len(POT_SIZES))]
            self.items[i] = ITEMS[rng.integers(len(ITEMS))]
            self.partners[i] = PARTNERS[rng.integers(len(PARTNERS))]
            self.demand[i] = OPENING_DEMANDS[rng.integers(len(OPENING_DEMANDS))]
            self.round[i] = 0
            self.proposals[i] = []
            self.outcome[i] = ""

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)
        reward = np.zeros(self.num_envs)
        terminated = np.zeros(self.num_envs, dtype=bool)
        success = np.zeros(self.num_envs, dtype=bool)
        for i, action in enumerate(actions):
            deal_share = None
            if action == 0:
                deal_share = 1.0 - self.demand[i]
            else:
                self.proposals[i].append(int(action) - 1)
                if PROPOSAL_SHARES[action - 1] >= self.demand[i]:
                    deal_share = 1.0 - PROPOSAL_SHARES[action - 1]
            self.round[i] += 1
            if deal_share is None and self.round[i] < ROUNDS:
                self.demand[i] = max(self.demand[i] - CONCESSION, DEMAND_FLOOR)
                continue
            terminated[i] = True
            success[i] = objective_met(OBJECTIVES[self.objective[i]], deal_share, self.proposals[i])
            reward[i] = float(success[i])
            self.outcome[i] = self.outcome_text(i, deal_share)
        return reward, terminated, {"gt_reward": reward.copy(), "is_success": success}

    def oracle_action(self, copy: int) -> int:
        objective, demand = OBJECTIVES[self.objective[copy]], self.demand[copy]
        refused = 1  # proposing the partner gets nothing is always refused: demand >= DEMAND_FLOOR > 0
        if objective == "competitive":
            return 0 if demand < 0.5 else refused  # wait for the partner to concede below half
        if objective == "push-over":
            return 1 + PROPOSAL_SHARES.index(0.75)  # always accepted: demand <= 3/4
        if objective == "fair":
            return 1 + PROPOSAL_SHARES.index(0.5) if demand <= 0.5 else refused
        if objective == "stubborn":
            return refused  # the same refused proposal every round
        if not self.proposals[copy]:  # versatile: a refused proposal, then the cheapest accepted one (distinct)
            return refused
        return 1 + next(k for k, share in enumerate(PROPOSAL_SHARES) if share >= demand)

    def count(self, copy: int, share: float) -> str:
        """'3 of 12 books'."""
        return f"{int(round(share * self.pot[copy]))} of {self.pot[copy]} {self.items[copy]}"

    def outcome_text(self, copy: int, deal_share: float | None) -> str:
        """The end of a negotiation in words."""
        if deal_share is None:
            return f"No deal after {ROUNDS} rounds."
        return f"Deal: you get {self.count(copy, deal_share)}, {self.partners[copy]} gets the rest."

    def options_text(self, copy: int) -> str:
        """The actions as text, one per line."""
        partner = self.partners[copy]
        lines = [f"(0) accept {partner}'s offer"]
        lines += [f"({a + 1}) propose: {partner} gets {self.count(copy, s)}" for a, s in enumerate(PROPOSAL_SHARES)]
        return "\n".join(lines)

    def state_text(self, copy: int) -> str:
        """Where the negotiation stands, in words."""
        partner = self.partners[copy]
        head = f"You and {partner} are splitting {self.pot[copy]} {self.items[copy]}."
        made = self.proposals[copy]
        history = ("Your proposals so far: " + "; ".join(f"{partner} gets {self.count(copy, PROPOSAL_SHARES[p])}"
                                                          for p in made) + ".") if made else "No proposals yet."
        if self.outcome[copy]:
            return f"{head} {history} {self.outcome[copy]}"
        offer = self.count(copy, 1.0 - self.demand[copy])
        return f"{head} Round {self.round[copy] + 1} of {ROUNDS}. {partner} offers you {offer}. {history}"

    def text(self, copy: int) -> str:
        return f"Objective: {self.objective_texts[copy]}\n{self.state_text(copy)}\n{self.options_text(copy)}"

    def observe(self) -> dict[str, np.ndarray]:
        copies = range(self.num_envs)
        counts = np.zeros((self.num_envs, len(PROPOSAL_SHARES)))
        for i in copies:
            np.add.at(counts[i], self.proposals[i], 1.0)
        state = np.concatenate([self.round[:, None] / ROUNDS, 1.0 - self.demand[:, None], counts / ROUNDS], 1)
        return {
            "text": text_batch([self.text(i) for i in copies]),
            "options": text_batch([self.options_text(i) for i in copies]),
            "objective": np.eye(len(OBJECTIVES), dtype=np.float32)[self.objective],
            "state": state.astype(np.float32),
        }

    def describe(self, copy: int) -> str:
        return f"The user wants the agent to be {OBJECTIVES[self.objective[copy]]}. {self.state_text(copy)}"


class NegotiationEnv(TextGameEnv):
    """`crlab/Negotiation-v0`: one negotiation of up to three rounds."""

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(NegotiationTask(1), render_mode)


class NegotiationVectorEnv(TextGameVectorEnv):
    """Vector form of `crlab/Negotiation-v0`."""

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = None, render_mode: str | None = None) -> None:
        super().__init__(NegotiationTask(num_envs), max_episode_steps, render_mode)
