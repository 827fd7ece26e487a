"""FlightPreference: book one of K flights for a user who states only part of what they want.

After FlightPref in "Inferring Rewards from Language in Context" (Lin et al., 2022). Each episode a user has a
hidden linear utility `w . phi(flight)` over flight features (price, stops, departure time, duration, airline);
their utterance reveals the one or two features that matter most to them ("I really want a cheap flight",
"I hate layovers"). The agent picks one flight (Discrete(K)); the reward is the user's true utility of it and
the episode ends.

Observation: `text` (utterance + the K flights), `options` (the K flights, one per line), `features` (K, 8)
the flights' normalised features `phi`, `utterance` (8,) the utterance as signed keyword strengths per feature.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from envs.text_game import TextGameEnv, TextGameTask, TextGameVectorEnv, text_batch, text_space

AIRLINES = ("SkyLark", "Nimbus Air", "BlueJay", "Orbit")
ASPECTS = ("price", "stops", "departure", "duration", "airline")
FEATURES = ("price", "stops", "departure", "duration", *(f"airline={a}" for a in AIRLINES))
NUM_FEATURES = len(FEATURES)
PREFERS_LOW = {"price": 0.8, "stops": 0.8, "departure": 0.5, "duration": 0.8, "airline": 0.5}  # P(weight < 0)
SALIENT_WEIGHT = (1.0, 3.0)  # |w| of the features the user talks about
STRONG_WEIGHT = 2.0  # at or above: "really"-strength wording, keyword strength 1 (else 0.5)
BACKGROUND_WEIGHT = 0.3  # std of the weights the user leaves unsaid

# UTTERANCES[aspect][sign][strong] -> templates; "{a}" is the airline.
UTTERANCES = {
    "price": {
        -1: {True: ["I really want a cheap flight.", "Price is what matters most to me.", "I'm on a tight budget."],
             False: ["Cheaper would be nice.", "I'd like to save a bit of money."]},
        1: {True: ["I only fly premium; a high price means a better trip."],
            False: ["I'd happily pay more for a pricier ticket."]},
    },
    "stops": {
        -1: {True: ["I hate layovers.", "Nonstop flights only, please."], False: ["I'd rather not have many stops."]},
        1: {True: ["I love layovers; I like to stretch my legs in new airports."],
            False: ["A stopover or two would be nice."]},
    },
    "departure": {
        -1: {True: ["I want to leave first thing in the morning.", "The earlier the departure, the better."],
             False: ["I'd prefer to leave early."]},
        1: {True: ["I am definitely not a morning person.", "I want to leave as late as possible."],
            False: ["A later departure would suit me."]},
    },
    "duration": {
        -1: {True: ["I want the shortest trip possible.", "Time in the air is wasted time for me."],
             False: ["A shorter flight would be good."]},
        1: {True: ["I love long flights; more time to read."],
            False: ["I don't mind a longer flight, even prefer it."]},
    },
    "airline": {
        -1: {True: ["I'll never fly {a} again.", "I hate {a}."], False: ["I'd rather avoid {a}."]},
        1: {True: ["I love flying with {a}.", "{a} is my favourite airline."],
            False: ["I have had good flights with {a}."]},
    },
}


def flight_features(price: np.ndarray, stops: np.ndarray, departure: np.ndarray, duration: np.ndarray,
                    airline: np.ndarray) -> np.ndarray:
    """phi (..., 8): price, stops, departure hour, duration (minutes) scaled to [-1, 1], then airline one-hot."""
    numeric = np.stack([(price - 450) / 350, stops - 1.0, (departure - 13.5) / 8.5, (duration - 390) / 330], -1)
    return np.concatenate([numeric, np.eye(len(AIRLINES))[airline]], -1)


def describe_flight(price: int, stops: int, departure: float, duration: int, airline: int) -> str:
    """One line of text for a flight, e.g. 'Orbit, $320, nonstop, departs 07:15, 3h 05m'."""
    hops = "nonstop" if stops == 0 else f"{stops} stop" + ("s" if stops > 1 else "")
    hour, minute = int(departure), int(round((departure % 1) * 60))
    length = f"{duration // 60}h {duration % 60:02d}m"
    return f"{AIRLINES[airline]}, ${price}, {hops}, departs {hour:02d}:{minute:02d}, {length}"


class FlightPreferenceTask(TextGameTask):
    """N one-step flight-booking episodes, each with its own hidden user utility."""

    def __init__(self, num_envs: int = 1, num_options: int = 3) -> None:
        super().__init__(num_envs)
        self.num_options = num_options
        self.observation_space = spaces.Dict(
            {
                "text": text_space(320 + 70 * num_options),
                "options": text_space(70 * num_options),
                "features": spaces.Box(-1.0, 1.0, (num_options, NUM_FEATURES), np.float32),
                "utterance": spaces.Box(-1.0, 1.0, (NUM_FEATURES,), np.float32),
            }
        )
        self.action_space = spaces.Discrete(num_options)
        self.weights = np.zeros((num_envs, NUM_FEATURES))
        self.phi = np.zeros((num_envs, num_options, NUM_FEATURES))
        self.keywords = np.zeros((num_envs, NUM_FEATURES))
        self.utterances = [""] * num_envs
        self.option_texts = [[""] * num_options for _ in range(num_envs)]
        self.chosen = np.full(num_envs, -1)

    def reset_copies(self, copies: np.ndarray) -> None:
        k = self.num_options
        for i in copies:
            rng = self.rngs[i]
            price = rng.integers(10, 81, k) * 10
            stops = rng.integers(0, 3, k)
            departure = rng.integers(5 * 4, 22 * 4 + 1, k) / 4
            duration = rng.integers(12, 145, k) * 5
            airline = rng.integers(0, len(AIRLINES), k)
            self.phi[i] = flight_features(price, stops, departure, duration, airline)
            self.option_texts[i] = [describe_flight(*f) for f in zip(price, stops, departure, duration, airline)]
            self.weights[i], self.keywords[i], self.utterances[i] = self.sample_user(rng)
            self.chosen[i] = -1

    @staticmethod
    def sample_user(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
        """Hidden weights w (8,), the utterance's keyword strengths (8,) and the utterance naming 1-2 aspects."""
        w = rng.normal(0.0, BACKGROUND_WEIGHT, NUM_FEATURES)
        keywords = np.zeros(NUM_FEATURES)
        sentences = []
        for aspect in rng.choice(ASPECTS, size=rng.integers(1, 3), replace=False):
            sign = -1 if rng.random() < PREFERS_LOW[aspect] else 1
            magnitude = rng.uniform(*SALIENT_WEIGHT)
            strong = bool(magnitude >= STRONG_WEIGHT)
            airline = int(rng.integers(len(AIRLINES)))
            index = 4 + airline if aspect == "airline" else ASPECTS.index(aspect)
            w[index] = sign * magnitude
            keywords[index] = sign * (1.0 if strong else 0.5)
            templates = UTTERANCES[aspect][sign][strong]
            sentences.append(templates[rng.integers(len(templates))].format(a=AIRLINES[airline]))
        return w, keywords, " ".join(sentences)

    def utilities(self) -> np.ndarray:
        """(N, K) the hidden utility of every option."""
        return np.einsum("nkd,nd->nk", self.phi, self.weights)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)
        utilities = self.utilities()
        reward = utilities[np.arange(self.num_envs), actions]
        best = utilities.argmax(1)
        self.chosen[:] = actions
        info = {"gt_reward": reward.copy(), "is_success": actions == best, "best_utility": utilities.max(1)}
        return reward, np.ones(self.num_envs, dtype=bool), info

    def oracle_action(self, copy: int) -> int:
        return int(self.utilities()[copy].argmax())

    def options_text(self, copy: int) -> str:
        """The K flights, one '(k) ...' line each."""
        return "\n".join(f"({k}) {line}" for k, line in enumerate(self.option_texts[copy]))

    def text(self, copy: int) -> str:
        head = f'User: "{self.utterances[copy]}"\nWhich flight should I book for them?\n'
        tail = f"\nBooked: ({self.chosen[copy]})" if self.chosen[copy] >= 0 else ""
        return head + self.options_text(copy) + tail

    def observe(self) -> dict[str, np.ndarray]:
        copies = range(self.num_envs)
        return {
            "text": text_batch([self.text(i) for i in copies]),
            "options": text_batch([self.options_text(i) for i in copies]),
            "features": self.phi.astype(np.float32),
            "utterance": self.keywords.astype(np.float32),
        }

    def describe(self, copy: int) -> str:
        said = f'A user said "{self.utterances[copy]}"'
        if self.chosen[copy] < 0:
            return f"{said} and {self.num_options} flights are on offer; none is booked yet."
        return f"{said}; the agent booked {self.option_texts[copy][self.chosen[copy]]}."


class FlightPreferenceEnv(TextGameEnv):
    """`crlab/FlightPreference-v0`: one user, K flights, one choice."""

    def __init__(self, num_options: int = 3, render_mode: str | None = None) -> None:
        super().__init__(FlightPreferenceTask(1, num_options), render_mode)


class FlightPreferenceVectorEnv(TextGameVectorEnv):
    """Vector form of `crlab/FlightPreference-v0`."""

    def __init__(self, num_envs: int = 1, num_options: int = 3, max_episode_steps: int | None = None,
                 render_mode: str | None = None) -> None:
        super().__init__(FlightPreferenceTask(num_envs, num_options), max_episode_steps, render_mode)
