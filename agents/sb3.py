"""Stable-Baselines3 baselines (`sb3_ppo`, `sb3_sac`) behind our Agent face, for side-by-side comparisons.

SB3 owns its learning loop (`model.learn`), so `scripts.train` drives these agents through its SB3 branch
(`scripts/engine.py`, SB3Source): our Gymnasium vector env (reward wrappers included) is adapted to SB3's `VecEnv` by
`SB3VecEnv`, and evaluation, videos, metrics.csv and checkpoints go through the same code as our agents.

Models are made by SB3's public constructors only (`SAC(policy, env, replay_buffer_class=..., ...)`), which build an
algorithm's buffers for the env they are given. Until `bind` gives an agent our vector env, its model stands on
`SpacesVecEnv` (our spaces, no episodes) and only acts and holds weights; `bind` constructs the model anew on our env
(with HER's buffer when it applies) and carries the weights, optimizer states and step count over.

Checkpoints hold only `state_dict()`s of the SB3 policy and its optimizers (SB3's public `get_parameters`), SAC /
TQC's entropy coefficient tensor (the one tensor SB3's own `save` adds for them) and observation statistics, written
with `torch.save` and read back with `weights_only=True`; SB3's `.zip` is not used, because loading it unpickles
(cloudpickle) arbitrary objects.

`sb3_ppo` mirrors our `ppo` (same rollout length, minibatches, epochs, clipping, tanh [64, 64] actor and critic,
Adam eps 1e-5, linear LR annealing, observation normalisation by running mean / var via SB3's `VecNormalize`).
`sb3_sac` is SAC with HER (`future`, 4 goals) switched on for GoalEnv dict observations; `sb3_tqc` is TQC
(Kuznetsov et al. 2020, from sb3-contrib) the same way, with the rl-baselines3-zoo's Fetch settings as defaults
(the zoo's strongest Fetch baseline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import TQC
from stable_baselines3 import PPO, SAC, HerReplayBuffer
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from agents.base import RewardFn, TensorObs

GOAL_KEYS = {"observation", "achieved_goal", "desired_goal"}


@dataclass
class SB3PPOConfig:
    """Fields of `scripts/conf/agent/sb3_ppo.yaml`, named as in our PPOConfig and mapped onto SB3's PPO."""

    num_steps: int = 64  # n_steps
    lr: float = 1e-3
    anneal_lr: bool = True
    discount: float = 0.95  # SB3's gamma
    gae_lambda: float = 0.95
    num_minibatches: int = 8  # batch_size = num_steps * num_envs / num_minibatches
    update_epochs: int = 10  # n_epochs
    clip_coef: float = 0.2
    clip_vloss: bool = True  # clip_range_vf = clip_coef
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    norm_adv: bool = True
    norm_obs: bool = True  # VecNormalize(norm_reward=False) on the vector (non-image) entries
    obs_clip: float = 10.0
    init_log_std: float = 0.0
    hidden: list[int] = field(default_factory=lambda: [64, 64])


@dataclass
class SB3SACConfig:
    """Fields of `scripts/conf/agent/sb3_sac.yaml` (SB3 SAC, FetchReach-style defaults)."""

    lr: float = 1e-3
    buffer_size: int = 1_000_000
    warmup_steps: int = 1_000  # env steps before learning starts (SB3's learning_starts)
    batch_size: int = 256
    discount: float = 0.95  # SB3's gamma
    tau: float = 0.05
    ent_coef: str = "auto"
    train_freq: int = 1  # vector steps between training phases
    gradient_steps: int = -1  # gradient steps per training phase (-1: one per env step collected)
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    her: bool | None = None  # None: on for GoalEnv dict observations (off with a reward module: HER relabels
    #                           with the env's own compute_reward, which would leak the ground truth)
    n_sampled_goal: int = 4
    goal_selection_strategy: str = "future"
    norm_obs: bool = False
    obs_clip: float = 10.0


def policy_name(space: spaces.Space) -> str:
    """SB3's policy class name for an observation space."""
    if isinstance(space, spaces.Dict):
        return "MultiInputPolicy"
    if isinstance(space, spaces.Box) and len(space.shape) == 3 and space.dtype == np.uint8:
        return "CnnPolicy"
    return "MlpPolicy"


def vector_keys(space: spaces.Space) -> list[str] | None:
    """Entries that observation normalisation covers: non-image Box entries of a Dict (None: the whole Box)."""
    if isinstance(space, spaces.Dict):
        return sorted(k for k, s in space.spaces.items() if isinstance(s, spaces.Box) and s.dtype != np.uint8)
    return None


def index_count(indices: Any, num_envs: int) -> int:
    """How many copies a VecEnv `indices` argument names (None: all, an int: one, else a sequence)."""
    if indices is None:
        return num_envs
    return 1 if isinstance(indices, int) else len(indices)


class SB3VecEnv(VecEnv):
    """SB3's VecEnv face of a Gymnasium VectorEnv with same-step autoreset (envs.batched.BatchedVectorEnv and its
    wrappers): dones = terminated | truncated, the true last observation in infos[i]["terminal_observation"]."""

    def __init__(self, env: gymnasium.vector.VectorEnv) -> None:
        self.env = env  # before VecEnv.__init__, which reads render_mode through get_attr
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self.actions: np.ndarray | None = None
        self.metadata = env.metadata
        self.next_seed: int | None = None  # for the next reset only, as VecEnv.seed documents

    def seed(self, seed: int | None = None) -> list[int | None]:
        """Seed the next reset: copy i gets seed + i (the vector env's own reset(seed) rule), as in VecEnv.seed."""
        if seed is None:  # VecEnv.seed's rule: a random seed still, so that copies differ
            seed = int(np.random.randint(0, np.iinfo(np.uint32).max, dtype=np.uint32))
        self.next_seed = seed
        return [seed + i for i in range(self.num_envs)]

    def reset(self) -> Any:
        obs, _ = self.env.reset(seed=self.next_seed)
        self.next_seed = None
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self.actions = actions

    def step_wait(self) -> tuple[Any, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        obs, reward, terminated, truncated, info = self.env.step(self.actions)
        done = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        final = info.get("final_info", {})
        for i in np.flatnonzero(done):
            last = info["final_obs"]
            infos[i]["terminal_observation"] = {k: v[i] for k, v in last.items()} if isinstance(last, dict) else last[i]
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            if "is_success" in final:
                infos[i]["is_success"] = bool(final["is_success"][i])
        if "gt_reward" in info:
            for i in range(self.num_envs):
                infos[i]["gt_reward"] = float(info["gt_reward"][i])
        return obs, reward.astype(np.float32), done, infos

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.env, attr_name)] * index_count(indices, self.num_envs)

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        """One call on the vector env (its methods are batched, e.g. compute_reward for HER), repeated per index."""
        result = getattr(self.env.unwrapped, method_name)(*method_args, **method_kwargs)
        return [result] * index_count(indices, self.num_envs)

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * index_count(indices, self.num_envs)


class SpacesVecEnv(VecEnv):
    """A VecEnv of spaces only, to construct an SB3 model before `bind` gives it our env (SB3's constructors need an
    env for the spaces and the number of copies); the model only acts and holds weights, so stepping is refused."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, num_envs: int) -> None:
        super().__init__(num_envs, observation_space, action_space)

    def reset(self) -> Any:
        raise not_bound()

    def step_async(self, actions: np.ndarray) -> None:
        raise not_bound()

    def step_wait(self) -> Any:
        raise not_bound()

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [None] * index_count(indices, self.num_envs)  # VecEnv.__init__ asks for render_mode

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        pass

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        raise not_bound()

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * index_count(indices, self.num_envs)


def not_bound() -> RuntimeError:
    return RuntimeError("an SB3 agent collects experience only after bind(env) (scripts/engine.py SB3Source)")


class SB3Agent:
    """Our Agent face over an SB3 model; `scripts.train` binds it to the env and calls `model.learn`."""

    loop = "sb3"  # the run engine drives it with SB3Source (SB3's learn)
    dataset_format = None  # online only (SB3 collects its own experience)

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, cfg: Any, num_envs: int,
                 max_episode_steps: int, device: torch.device) -> None:
        if isinstance(observation_space, spaces.Dict) and any(isinstance(s, spaces.Text) for s in observation_space.values()):
            raise ValueError("SB3 policies cannot read Text observations; filter them to the numeric views first")
        self.cfg, self.device, self.num_envs, self.max_episode_steps = cfg, device, num_envs, max_episode_steps
        self.observation_space, self.action_space = observation_space, action_space
        self.keys = vector_keys(observation_space)
        self.obs_rms: dict[str, RunningMeanStd] | RunningMeanStd | None = None
        if cfg.norm_obs and policy_name(observation_space) != "CnnPolicy":
            self.obs_rms = ({k: RunningMeanStd(shape=observation_space[k].shape) for k in self.keys}
                            if self.keys is not None else RunningMeanStd(shape=observation_space.shape))
        self.her = False  # SAC / TQC: a HER replay buffer, decided in `bind` (a reward module rules it out)
        # SB3 constructs a model from an env: until `bind` brings ours, one of our spaces (acting and checkpoints work
        # before bind: evaluation of a restored agent, resuming a run)
        self.model = self.new_model(SpacesVecEnv(observation_space, action_space, num_envs), bound=False)

    def make_model(self, venv: VecEnv, bound: bool) -> BaseAlgorithm:
        """The SB3 model on `venv` by its public constructor (`bound`: `venv` is our env, the model will learn)."""
        raise NotImplementedError

    def new_model(self, venv: VecEnv, bound: bool) -> BaseAlgorithm:
        """`make_model`'s model, logging nowhere."""
        model = self.make_model(venv, bound)
        # crlab's engine logs the run; SB3's default logger would make an empty tempdir/SB3-<time> folder per learn()
        model.set_logger(Logger(folder=None, output_formats=[]))
        return model

    # --- the SB3 loop ------------------------------------------------------------------------------------
    def bind(self, env: gymnasium.vector.VectorEnv, her_allowed: bool = True) -> VecEnv:
        """Construct the model on our vector env (observation normalisation shares this agent's statistics), with the
        weights, optimizer states and step count it held so far (its initial ones, or a checkpoint's)."""
        venv: VecEnv = SB3VecEnv(env)
        if self.obs_rms is not None:
            venv = VecNormalize(venv, norm_obs=True, norm_reward=False, clip_obs=self.cfg.obs_clip,
                                norm_obs_keys=self.keys)
            venv.obs_rms = self.obs_rms
        state = self.model_state()
        # SB3 makes a model's buffers in its constructor, for the env given there (HER's buffer keeps that env for
        # compute_reward), hence a new model rather than set_env. Its fresh weights are overwritten, so constructing
        # it must not draw from the run's random numbers (SB3 initialises weights on the CPU, then moves them)
        with torch.random.fork_rng(devices=[]):
            self.model = self.new_model(venv, bound=True)
        self.load_model_state(state)
        return venv

    @property
    def env_steps(self) -> int:
        return int(self.model.num_timesteps)

    # --- Agent face --------------------------------------------------------------------------------------
    def normalize(self, obs: Any) -> Any:
        """VecNormalize's transform with this agent's statistics (numpy in, numpy out)."""
        if self.obs_rms is None:
            return obs
        clip, eps = self.cfg.obs_clip, 1e-8
        scale = lambda x, rms: np.clip((x - rms.mean) / np.sqrt(rms.var + eps), -clip, clip).astype(np.float32)  # noqa: E731
        if isinstance(obs, dict):
            return {k: scale(v, self.obs_rms[k]) if k in self.obs_rms else v for k, v in obs.items()}
        return scale(obs, self.obs_rms)

    @torch.no_grad()
    def act(self, obs: TensorObs, deterministic: bool = False) -> torch.Tensor:
        """obs leaves (N, ...) -> actions (N, ...) within the action bounds (SB3's `predict`)."""
        if isinstance(obs, dict):
            numpy_obs: Any = {k: v.cpu().numpy() for k, v in obs.items()}
        else:
            numpy_obs = obs.cpu().numpy()
        if isinstance(self.observation_space, spaces.Box) and self.observation_space.dtype == np.uint8:
            numpy_obs = numpy_obs.astype(np.uint8)
        if isinstance(numpy_obs, dict):
            numpy_obs = {k: v.astype(np.uint8) if self.observation_space[k].dtype == np.uint8 else v
                         for k, v in numpy_obs.items()}
        action, _ = self.model.policy.predict(self.normalize(numpy_obs), deterministic=deterministic)
        return torch.as_tensor(action, device=self.device)

    def observe(self, *args: Any) -> None:
        raise RuntimeError("SB3 agents collect their own experience in model.learn (scripts/engine.py SB3Source)")

    def update(self) -> dict[str, torch.Tensor]:
        raise RuntimeError("SB3 agents train in model.learn (scripts/engine.py SB3Source)")

    # --- checkpoints -------------------------------------------------------------------------------------
    def saved_tensors(self) -> dict[str, torch.Tensor]:
        """The model's learned tensors outside its modules and optimizers (none for PPO), by attribute name."""
        return {}

    def model_state(self) -> dict[str, Any]:
        """State dicts of SB3's modules / optimizers (named as SB3's `save` names them), the tensors of
        `saved_tensors` and the step count."""
        return {"modules": self.model.get_parameters(),
                "tensors": {n: t.detach().cpu() for n, t in self.saved_tensors().items()},
                "num_timesteps": int(self.model.num_timesteps)}

    def load_model_state(self, state: dict[str, Any]) -> None:
        self.model.set_parameters(state["modules"], exact_match=True)  # every module and optimizer SB3 saves
        with torch.no_grad():
            for name, tensor in self.saved_tensors().items():
                tensor.copy_(state["tensors"][name])
        self.model.num_timesteps = int(state["num_timesteps"])

    def state_dict(self) -> dict[str, Any]:
        """`model_state()` and the observation statistics."""
        state = self.model_state()
        if self.obs_rms is not None:
            items = self.obs_rms.items() if isinstance(self.obs_rms, dict) else [("", self.obs_rms)]
            state["obs_rms"] = {k: {"mean": torch.as_tensor(r.mean), "var": torch.as_tensor(r.var),
                                    "count": float(r.count)} for k, r in items}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_model_state(state)
        if self.obs_rms is not None:
            items = self.obs_rms.items() if isinstance(self.obs_rms, dict) else [("", self.obs_rms)]
            for key, rms in items:
                saved = state["obs_rms"][key]
                rms.mean, rms.var, rms.count = saved["mean"].numpy(), saved["var"].numpy(), saved["count"]


@dataclass
class SB3TQCConfig(SB3SACConfig):
    """Fields of `scripts/conf/agent/sb3_tqc.yaml`: SB3SACConfig's, with rl-baselines3-zoo's FetchPush / FetchPickAndPlace
    TQC+HER settings as defaults (batch 2048, three layers of 512), and TQC's own."""

    batch_size: int = 2048
    hidden: list[int] = field(default_factory=lambda: [512, 512, 512])
    n_quantiles: int = 25
    top_quantiles_to_drop_per_net: int = 2
    n_critics: int = 2


class SB3PPOAgent(SB3Agent):
    """SB3 PPO with our PPO's settings (see SB3PPOConfig)."""

    def make_model(self, venv: VecEnv, bound: bool) -> BaseAlgorithm:
        cfg = self.cfg
        batch = cfg.num_steps * venv.num_envs
        lr = LinearSchedule(cfg.lr, 0.0, 1.0) if cfg.anneal_lr else cfg.lr  # progress 1 -> 0 over learn()'s budget
        return PPO(policy_name(self.observation_space), venv, device=self.device, learning_rate=lr,
                   n_steps=cfg.num_steps, batch_size=max(1, batch // cfg.num_minibatches), n_epochs=cfg.update_epochs,
                   gamma=cfg.discount, gae_lambda=cfg.gae_lambda, clip_range=cfg.clip_coef,
                   clip_range_vf=cfg.clip_coef if cfg.clip_vloss else None, normalize_advantage=cfg.norm_adv,
                   ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm,
                   policy_kwargs=dict(net_arch=dict(pi=list(cfg.hidden), vf=list(cfg.hidden)),
                                      activation_fn=torch.nn.Tanh, log_std_init=cfg.init_log_std))


class SB3SACAgent(SB3Agent):
    """SB3 SAC, with HER on GoalEnv dict observations (see SB3SACConfig)."""

    def sb3_algorithm(self) -> tuple[type[BaseAlgorithm], dict[str, Any], dict[str, Any]]:
        """The SB3 class, its extra constructor arguments and extra policy arguments."""
        return SAC, {}, {}

    def make_model(self, venv: VecEnv, bound: bool) -> BaseAlgorithm:
        cfg = self.cfg
        algorithm, extra, policy_extra = self.sb3_algorithm()
        learning_starts = cfg.warmup_steps
        if bound and self.her:
            # SB3 hands HER's buffer the env given here (`venv`), whose vectorized compute_reward relabels the goals
            extra = {**extra, "replay_buffer_class": HerReplayBuffer, "replay_buffer_kwargs": dict(
                n_sampled_goal=cfg.n_sampled_goal, goal_selection_strategy=cfg.goal_selection_strategy)}
            # HER samples only from finished episodes: learn after the first episode of every copy at least
            learning_starts = max(cfg.warmup_steps, self.num_envs * self.max_episode_steps)
        self.warmup_after_load = learning_starts
        return algorithm(policy_name(self.observation_space), venv, device=self.device, learning_rate=cfg.lr,
                         buffer_size=cfg.buffer_size if bound else 1,  # unbound, the model only acts: no buffer to fill
                         learning_starts=learning_starts, batch_size=cfg.batch_size, gamma=cfg.discount, tau=cfg.tau,
                         ent_coef=cfg.ent_coef, train_freq=cfg.train_freq, gradient_steps=cfg.gradient_steps,
                         policy_kwargs=dict(net_arch=list(cfg.hidden), **policy_extra), **extra)

    def load_model_state(self, state: dict[str, Any]) -> None:
        """Restore as SB3Agent does; SB3's replay buffer is not in crlab's checkpoints (it would be a pickle), so a
        resumed model fills it again, as at the start (random actions for `learning_starts` env steps, a finished
        episode per copy with HER), before it trains: training on at once failed with HER's "Unable to sample
        before the end of the first episode"."""
        super().load_model_state(state)
        self.model.learning_starts = self.model.num_timesteps + self.warmup_after_load

    def saved_tensors(self) -> dict[str, torch.Tensor]:
        """The entropy coefficient, which SB3's `save` keeps beside the state dicts: learned (its log, with
        ent_coef="auto") or fixed."""
        if self.model.ent_coef_optimizer is not None:
            return {"log_ent_coef": self.model.log_ent_coef}
        return {"ent_coef_tensor": self.model.ent_coef_tensor}

    def bind(self, env: gymnasium.vector.VectorEnv, her_allowed: bool = True) -> VecEnv:
        cfg = self.cfg
        goal_env = isinstance(self.observation_space, spaces.Dict) and GOAL_KEYS <= set(self.observation_space.spaces)
        if cfg.her and not goal_env:
            raise ValueError("sb3_sac her=true needs a GoalEnv (observation / achieved_goal / desired_goal)")
        if cfg.her and not her_allowed:
            raise ValueError("sb3_sac her=true with a reward module: HER would relabel with the env's own reward")
        self.her = goal_env and her_allowed if cfg.her is None else bool(cfg.her)
        return super().bind(env, her_allowed)  # the model is constructed anew on `env`, with HER's buffer if self.her


    # --- reward relabelling (agents.base.RelabelsRewards) -------------------------------------------------
    def check_reward_inputs(self, obs_keys: list[str] | None) -> None:
        """SB3's buffer keeps whole observations: any reward model can relabel it."""

    @torch.no_grad()
    def relabel_rewards(self, reward_fn: RewardFn, chunk_size: int = 8192) -> None:
        """PEBBLE: every reward in SB3's replay buffer recomputed by the current reward model. SB3 stores raw
        (unnormalised) observations and actions scaled to [-1, 1]; the model sees the env's actions. The transition
        of the vector step in flight when the callback runs is stored after it, with the previous model's reward."""
        buffer = self.model.replay_buffer
        if buffer is None:
            return
        rows = buffer.buffer_size if buffer.full else buffer.pos
        flat = lambda x: x[:rows].reshape(rows * buffer.n_envs, *x.shape[2:])  # noqa: E731  (rows * n_envs, ...)
        tensor = lambda x: torch.as_tensor(x, dtype=torch.float32, device=self.device)  # noqa: E731
        obs, next_obs = buffer.observations, buffer.next_observations
        actions = flat(buffer.actions)
        if isinstance(self.action_space, spaces.Box):
            actions = self.model.policy.unscale_action(actions)
        rewards = np.empty(rows * buffer.n_envs, dtype=np.float32)
        for start in range(0, len(rewards), chunk_size):
            part = slice(start, start + chunk_size)
            take = (lambda x: {k: tensor(flat(v)[part]) for k, v in x.items()}) if isinstance(obs, dict) else (  # noqa: E731
                lambda x: tensor(flat(x)[part]))
            rewards[part] = reward_fn(take(obs), tensor(actions[part]), take(next_obs)).cpu().numpy()
        buffer.rewards[:rows] = rewards.reshape(rows, buffer.n_envs)


class SB3TQCAgent(SB3SACAgent):
    """sb3-contrib TQC, with HER on GoalEnv dict observations (see SB3TQCConfig)."""

    def sb3_algorithm(self) -> tuple[type[BaseAlgorithm], dict[str, Any], dict[str, Any]]:
        cfg = self.cfg
        return (TQC, {"top_quantiles_to_drop_per_net": cfg.top_quantiles_to_drop_per_net},
                {"n_quantiles": cfg.n_quantiles, "n_critics": cfg.n_critics})
