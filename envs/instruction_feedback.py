"""InstructionFeedback: collect objects for a teacher who states preferences and answers each choice in words.

After "Learning Rewards from Linguistic Feedback" (Sumers et al., 2021). Objects have a colour, a shape and a
pattern. The teacher's hidden reward is linear in the feature one-hots: the teacher holds one preference per
attribute (a colour, a shape, a pattern), each with a strength in {-2, -1, +1, +2} ("hate", "don't like", "like",
"love"); every other feature value weighs 0. The instruction states two of the three preferences. Each of
`CHOICES` steps the agent picks one of K new objects (Discrete(K)); the reward is the object's hidden value and the
teacher replies in one of the paper's three forms: evaluative ("Great choice!", sentiment only), descriptive
(sentiment + "I also love dotted things.") or imperative (sentiment + "Never pick dotted things!"). Descriptive
and imperative feedback state the preference not yet stated, so later picks can exploit earlier feedback.
The feedback is in the next observation and in `info["feedback"]`.

Observation: `text` (instruction, feedback so far, options), `options` (one per line), `features` (K, 10) option
feature one-hots, `language` (12,): the strength every stated preference names, divided by 2, per feature value
(10, 0 where nothing was said; exactly what the text says), the last feedback's sentiment in [-1, 1] and whether
there was feedback (1); `option_mentions` (K, 10): what was said about each option's own features
(`features * language[:10]`). `features @ language[:10]` is a listener that scores options by what it was told.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from envs.text_game import TextGameEnv, TextGameTask, TextGameVectorEnv, text_batch, text_space

COLORS = ("red", "blue", "green", "yellow")
SHAPES = ("circle", "square", "triangle")
PATTERNS = ("plain", "striped", "dotted")
ATTRIBUTES = (COLORS, SHAPES, PATTERNS)
FEATURE_NAMES = (*COLORS, *SHAPES, *PATTERNS)
NUM_FEATURES = len(FEATURE_NAMES)
OFFSETS = np.array([0, len(COLORS), len(COLORS) + len(SHAPES)])  # first feature index of each attribute
CHOICES = 3
STATED_IN_INSTRUCTION = 2  # of the three preferences; feedback may state the third
MAX_STRENGTH = 2
STRENGTHS = (-2, -1, 1, 2)
FEEDBACK_FORMS = ("evaluative", "descriptive", "imperative")
# strength -> how the teacher says it: descriptive verb, imperative sentence ({} = 'dotted things')
DESCRIPTIVE = {2: "I love", 1: "I like", -1: "I don't like", -2: "I hate"}
IMPERATIVE = {2: "Always pick {}!", 1: "Pick {} when you can.", -1: "Try to avoid {}.", -2: "Never pick {}!"}
# (lowest value, sentiment in [-1, 1], phrases); the first row whose lowest value the object's value reaches
SENTIMENTS = (
    (2.0, 1.0, ["Great choice, that's exactly the kind of thing I like!", "Excellent, I love it!"]),
    (1.0, 0.5, ["Good, I like that.", "Nice pick."]),
    (0.0, 0.0, ["That's okay, I don't feel strongly about it.", "Hmm, it's fine I guess."]),
    (-1.0, -0.5, ["Not really what I wanted.", "Hmm, I don't like that much."]),
    (-np.inf, -1.0, ["No, that's terrible!", "No, I really don't like that one."]),
)


def feature_plural(index: int) -> str:
    """How the teacher names things with one feature value: 'blue things', 'circles', 'striped things'."""
    name = FEATURE_NAMES[index]
    return f"{name}s" if name in SHAPES else f"{name} things"


def object_name(features: np.ndarray) -> str:
    """'striped blue circle' from the (3,) colour, shape, pattern indices."""
    color, shape, pattern = features
    prefix = "" if PATTERNS[pattern] == "plain" else f"{PATTERNS[pattern]} "
    return f"{prefix}{COLORS[color]} {SHAPES[shape]}"


def one_hot(features: np.ndarray) -> np.ndarray:
    """(..., 10) feature one-hots from (..., 3) colour, shape, pattern indices."""
    return np.eye(NUM_FEATURES)[features + OFFSETS].sum(-2)


def state_preference(feature: int, strength: int, form: str) -> str:
    """One stated preference: 'I love dotted things.' (descriptive) or 'Never pick dotted things!' (imperative)."""
    if form == "imperative":
        return IMPERATIVE[strength].format(feature_plural(feature))
    return f"{DESCRIPTIVE[strength]} {feature_plural(feature)}."


class InstructionFeedbackTask(TextGameTask):
    """N episodes of `CHOICES` picks, each with its own hidden teacher reward."""

    def __init__(self, num_envs: int = 1, num_options: int = 4) -> None:
        super().__init__(num_envs)
        self.num_options = num_options
        self.observation_space = spaces.Dict(
            {
                "text": text_space(400 + 200 * CHOICES + 40 * num_options),
                "options": text_space(40 * num_options),
                "features": spaces.Box(0.0, 1.0, (num_options, NUM_FEATURES), np.float32),
                "language": spaces.Box(-1.0, 1.0, (NUM_FEATURES + 2,), np.float32),
                "option_mentions": spaces.Box(-1.0, 1.0, (num_options, NUM_FEATURES), np.float32),
            }
        )
        self.action_space = spaces.Discrete(num_options)
        self.weights = np.zeros((num_envs, NUM_FEATURES))
        self.preferences = np.zeros((num_envs, len(ATTRIBUTES)), dtype=np.int64)  # feature index per attribute
        self.unstated = [[0] for _ in range(num_envs)]  # attributes whose preference is not yet stated
        self.objects = np.zeros((num_envs, num_options, 3), dtype=np.int64)  # colour, shape, pattern per option
        self.stated = np.zeros((num_envs, NUM_FEATURES))  # stated strength / MAX_STRENGTH per feature value
        self.sentiment = np.zeros(num_envs)
        self.choice = np.zeros(num_envs, dtype=np.int64)  # choices made this episode
        self.instructions = [""] * num_envs
        self.feedback: list[list[str]] = [[] for _ in range(num_envs)]

    def reset_copies(self, copies: np.ndarray) -> None:
        for i in copies:
            rng = self.rngs[i]
            self.preferences[i] = [OFFSETS[a] + rng.integers(len(values)) for a, values in enumerate(ATTRIBUTES)]
            self.weights[i] = 0.0
            self.weights[i, self.preferences[i]] = rng.choice(STRENGTHS, len(ATTRIBUTES))
            order = [int(a) for a in rng.permutation(len(ATTRIBUTES))]
            self.stated[i] = 0.0
            said = [self.state(i, a, "descriptive") for a in order[:STATED_IN_INSTRUCTION]]
            self.unstated[i] = order[STATED_IN_INSTRUCTION:]
            self.instructions[i] = "Pick objects I will like. " + " ".join(said)
            self.sentiment[i] = 0.0
            self.choice[i] = 0
            self.feedback[i] = []
            self.draw_objects(i)

    def state(self, copy: int, attribute: int, form: str) -> str:
        """The teacher states one attribute's preference; the `language` view records exactly that."""
        feature = int(self.preferences[copy, attribute])
        strength = int(self.weights[copy, feature])
        self.stated[copy, feature] = strength / MAX_STRENGTH
        return state_preference(feature, strength, form)

    def draw_objects(self, copy: int) -> None:
        """K fresh objects for one copy."""
        rng = self.rngs[copy]
        self.objects[copy] = np.stack([rng.integers(0, len(v), self.num_options) for v in ATTRIBUTES], 1)

    def values(self) -> np.ndarray:
        """(N, K) the hidden value of every option."""
        return np.einsum("nkd,nd->nk", one_hot(self.objects), self.weights)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)
        values = self.values()
        reward = values[np.arange(self.num_envs), actions]
        success = reward >= values.max(1)  # ties: any best-valued object is a success
        feedback = [self.teacher_feedback(i, int(a), values[i]) for i, a in enumerate(actions)]
        self.choice += 1
        terminated = self.choice >= CHOICES
        for i in np.flatnonzero(~terminated):
            self.draw_objects(i)
        info = {"gt_reward": reward.copy(), "is_success": success, "feedback": text_batch(feedback)}
        return reward, terminated, info

    def teacher_feedback(self, copy: int, action: int, values: np.ndarray) -> str:
        """The teacher's sentence about the chosen object; descriptive and imperative forms also state the
        preference not yet stated (if any). Updates the copy's language state."""
        rng = self.rngs[copy]
        sentiment, phrases = next((s, p) for low, s, p in SENTIMENTS if values[action] >= low)
        sentence = phrases[rng.integers(len(phrases))]
        form = FEEDBACK_FORMS[rng.integers(len(FEEDBACK_FORMS))]
        if form != "evaluative" and self.unstated[copy]:
            also = self.state(copy, self.unstated[copy].pop(0), form)
            sentence += " Also: " + also if form == "descriptive" else f" Next time: {also}"
        self.sentiment[copy] = sentiment
        self.feedback[copy].append(f'You picked the {object_name(self.objects[copy, action])}. Teacher: "{sentence}"')
        return sentence

    def oracle_action(self, copy: int) -> int:
        return int(self.values()[copy].argmax())

    def options_text(self, copy: int) -> str:
        """The K objects, one '(k) ...' line each."""
        return "\n".join(f"({k}) the {object_name(o)}" for k, o in enumerate(self.objects[copy]))

    def text(self, copy: int) -> str:
        lines = [f'Teacher: "{self.instructions[copy]}"', *self.feedback[copy]]
        if self.choice[copy] < CHOICES:
            lines += [f"Choice {self.choice[copy] + 1} of {CHOICES}:", self.options_text(copy)]
        return "\n".join(lines)

    def observe(self) -> dict[str, np.ndarray]:
        copies = range(self.num_envs)
        had_feedback = (self.choice > 0).astype(np.float64)
        features = one_hot(self.objects)
        return {
            "text": text_batch([self.text(i) for i in copies]),
            "options": text_batch([self.options_text(i) for i in copies]),
            "features": features.astype(np.float32),
            "language": np.concatenate([self.stated, self.sentiment[:, None], had_feedback[:, None]], 1).astype(
                np.float32
            ),
            "option_mentions": (features * self.stated[:, None, :]).astype(np.float32),
        }

    def describe(self, copy: int) -> str:
        done = self.choice[copy]
        last = f" Last: {self.feedback[copy][-1]}" if done else ""
        return f'A teacher asked: "{self.instructions[copy]}" The agent has made {done} of {CHOICES} picks.{last}'


class InstructionFeedbackEnv(TextGameEnv):
    """`crlab/InstructionFeedback-v0`: one teacher, three picks among K objects."""

    def __init__(self, num_options: int = 4, render_mode: str | None = None) -> None:
        super().__init__(InstructionFeedbackTask(1, num_options), render_mode)


class InstructionFeedbackVectorEnv(TextGameVectorEnv):
    """Vector form of `crlab/InstructionFeedback-v0`."""

    def __init__(self, num_envs: int = 1, num_options: int = 4, max_episode_steps: int | None = None,
                 render_mode: str | None = None) -> None:
        super().__init__(InstructionFeedbackTask(num_envs, num_options), max_episode_steps, render_mode)
