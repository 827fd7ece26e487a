"""InstructionFeedback: collect objects for a teacher who answers each choice in natural language.

After "Learning Rewards from Linguistic Feedback" (Sumers et al., 2021). Objects have a colour, a shape and a
pattern; the teacher's hidden reward is linear in these features (one weight per feature value). The teacher's
instruction names one preference. Each of `CHOICES` steps the agent picks one of K new objects (Discrete(K));
the reward is the object's hidden value and the teacher replies with feedback whose sentiment carries that value,
in one of the paper's three forms: evaluative ("Great choice!"), descriptive ("... I love blue things") or
imperative ("... You should have picked the striped blue circle"). The feedback is in the next observation and
in `info["feedback"]`.

Observation: `text` (instruction, feedback so far, options), `options` (one per line), `features` (K, 10) option
feature one-hots, `language` (12,): signed feature mentions in the instruction and feedback so far (10), the last
feedback's sentiment in [-1, 1] and whether there was feedback (1).
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from envs.text_game import TextGameEnv, TextGameTask, TextGameVectorEnv, text_batch, text_space

COLORS = ("red", "blue", "green", "yellow")
SHAPES = ("circle", "square", "triangle")
PATTERNS = ("plain", "striped", "dotted")
FEATURE_NAMES = (*COLORS, *SHAPES, *PATTERNS)
NUM_FEATURES = len(FEATURE_NAMES)
CHOICES = 3
WEIGHT_STD = 1.0
FEEDBACK_FORMS = ("evaluative", "descriptive", "imperative")
# (lowest value, sentiment in [-1, 1], phrases); the first row whose lowest value the object's value reaches
SENTIMENTS = (
    (2.0, 1.0, ["Great choice, that's exactly the kind of thing I like!", "Excellent, I love it!"]),
    (0.5, 0.5, ["Good, I like that.", "Nice pick."]),
    (-0.5, 0.0, ["That's okay, I don't feel strongly about it.", "Hmm, it's fine I guess."]),
    (-2.0, -0.5, ["Not really what I wanted.", "Hmm, I don't like that much."]),
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
    offsets = np.array([0, len(COLORS), len(COLORS) + len(SHAPES)])
    return np.eye(NUM_FEATURES)[features + offsets].sum(-2)


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
            }
        )
        self.action_space = spaces.Discrete(num_options)
        self.weights = np.zeros((num_envs, NUM_FEATURES))
        self.objects = np.zeros((num_envs, num_options, 3), dtype=np.int64)  # colour, shape, pattern per option
        self.mentions = np.zeros((num_envs, NUM_FEATURES))
        self.sentiment = np.zeros(num_envs)
        self.choice = np.zeros(num_envs, dtype=np.int64)  # choices made this episode
        self.instructions = [""] * num_envs
        self.feedback: list[list[str]] = [[] for _ in range(num_envs)]

    def reset_copies(self, copies: np.ndarray) -> None:
        for i in copies:
            rng = self.rngs[i]
            self.weights[i] = rng.normal(0.0, WEIGHT_STD, NUM_FEATURES)
            hinted = int(rng.integers(NUM_FEATURES))
            verb = "I like" if self.weights[i, hinted] > 0 else "I don't like"
            self.instructions[i] = f"Pick objects I will like. Hint: {verb} {feature_plural(hinted)}."
            self.mentions[i] = 0.0
            self.mentions[i, hinted] = np.sign(self.weights[i, hinted])
            self.sentiment[i] = 0.0
            self.choice[i] = 0
            self.feedback[i] = []
            self.draw_objects(i)

    def draw_objects(self, copy: int) -> None:
        """K fresh objects for one copy."""
        rng = self.rngs[copy]
        sizes = (len(COLORS), len(SHAPES), len(PATTERNS))
        self.objects[copy] = np.stack([rng.integers(0, s, self.num_options) for s in sizes], 1)

    def values(self) -> np.ndarray:
        """(N, K) the hidden value of every option."""
        return np.einsum("nkd,nd->nk", one_hot(self.objects), self.weights)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)
        values = self.values()
        reward = values[np.arange(self.num_envs), actions]
        success = actions == values.argmax(1)
        feedback = [self.teacher_feedback(i, int(a), values[i]) for i, a in enumerate(actions)]
        self.choice += 1
        terminated = self.choice >= CHOICES
        for i in np.flatnonzero(~terminated):
            self.draw_objects(i)
        info = {"gt_reward": reward.copy(), "is_success": success, "feedback": text_batch(feedback)}
        return reward, terminated, info

    def teacher_feedback(self, copy: int, action: int, values: np.ndarray) -> str:
        """The teacher's sentence about the chosen object; updates the copy's language state."""
        rng = self.rngs[copy]
        value = values[action]
        sentiment, phrases = next((s, p) for low, s, p in SENTIMENTS if value >= low)
        sentence = phrases[rng.integers(len(phrases))]
        form = FEEDBACK_FORMS[rng.integers(len(FEEDBACK_FORMS))]
        chosen = self.objects[copy, action]
        if form == "descriptive":
            features = np.flatnonzero(one_hot(chosen))
            salient = features[np.abs(self.weights[copy, features]).argmax()]
            verb = "I like" if self.weights[copy, salient] > 0 else "I don't like"
            sentence += f" {verb} {feature_plural(salient)}."
            self.mentions[copy, salient] = np.sign(self.weights[copy, salient])
        elif form == "imperative" and action != values.argmax():
            sentence += f" You should have picked the {object_name(self.objects[copy, values.argmax()])}."
        self.sentiment[copy] = sentiment
        self.feedback[copy].append(f'You picked the {object_name(chosen)}. Teacher: "{sentence}"')
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
        return {
            "text": text_batch([self.text(i) for i in copies]),
            "options": text_batch([self.options_text(i) for i in copies]),
            "features": one_hot(self.objects).astype(np.float32),
            "language": np.concatenate([self.mentions, self.sentiment[:, None], had_feedback[:, None]], 1).astype(
                np.float32
            ),
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
