"""Stable-Baselines3 baselines (`sb3_ppo`, `sb3_sac`) behind our Agent face, for side-by-side comparisons.

SB3 owns its learning loop (`model.learn`), so `scripts.train` drives these agents through its SB3 branch
(`scripts/engine.py`, SB3Source): our Gymnasium vector env (reward wrappers included) is adapted to SB3's `VecEnv` by
`SB3VecEnv`, and evaluation, videos, metrics.csv and checkpoints go through the same code as our agents.

Checkpoints hold only `state_dict()`s of the SB3 policy, its optimizers and tensors (SB3's own list,
`_get_torch_save_params`) plus observation statistics, written with `torch.save` and read back with
`weights_only=True`; SB3's `.zip` is not used, because loading it unpickles (cloudpickle) arbitrary objects.

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
    """Fields of `scripts/conf/agent/sb3_sac.yaml` (SB3 SAC; FetchReach-style defaults as in scripts/bench/reach.py)."""

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


class SB3VecEnv(VecEnv):
    """SB3's VecEnv face of a Gymnasium VectorEnv with same-step autoreset (envs.batched.BatchedVectorEnv and its
    wrappers): dones = terminated | truncated, the true last observation in infos[i]["terminal_observation"]."""

    def __init__(self, env: gymnasium.vector.VectorEnv) -> None:
        self.env = env  # before VecEnv.__init__, which reads render_mode through get_attr
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self.actions: np.ndarray | None = None
        self.metadata = env.metadata

    def reset(self) -> Any:
        seed = self._seeds[0]
        obs, _ = self.env.reset(seed=seed)
        self._reset_seeds()
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
        return [getattr(self.env, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        """One call on the vector env (its methods are batched, e.g. compute_reward for HER), repeated per index."""
        result = getattr(self.env.unwrapped, method_name)(*method_args, **method_kwargs)
        return [result] * len(self._get_indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._get_indices(indices))


class SB3Agent:
    """Our Agent face over an SB3 model; `scripts.train` binds it to the env and calls `model.learn`."""

    loop = "sb3"  # the run engine drives it with SB3Source (SB3's learn)

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
        self.model = self._build(observation_space, action_space, num_envs, device)
        self.her = False

    def _build(self, observation_space: spaces.Space, action_space: spaces.Space, num_envs: int,
               device: torch.device) -> BaseAlgorithm:
        raise NotImplementedError

    @staticmethod
    def _setup(model: BaseAlgorithm, observation_space: spaces.Space, action_space: spaces.Space, num_envs: int) -> BaseAlgorithm:
        """Finish an SB3 model made with `_init_setup_model=False` from the spaces alone (as SB3's `load` does)."""
        model.observation_space, model.action_space, model.n_envs = observation_space, action_space, num_envs
        model._setup_model()
        # crlab's engine logs the run; SB3's default logger would make an empty tempdir/SB3-<time> folder per learn()
        model.set_logger(Logger(folder=None, output_formats=[]))
        return model

    # --- the SB3 loop ------------------------------------------------------------------------------------
    def bind(self, env: gymnasium.vector.VectorEnv, her_allowed: bool = True) -> VecEnv:
        """Give the model our vector env (observation normalisation shares this agent's statistics)."""
        venv: VecEnv = SB3VecEnv(env)
        if self.obs_rms is not None:
            venv = VecNormalize(venv, norm_obs=True, norm_reward=False, clip_obs=self.cfg.obs_clip,
                                norm_obs_keys=self.keys)
            venv.obs_rms = self.obs_rms
        self.model.set_env(venv)
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
    def state_dict(self) -> dict[str, Any]:
        """State dicts of SB3's saved modules / optimizers, its saved tensors, obs statistics and the step count."""
        names, tensors = self.model._get_torch_save_params()
        state: dict[str, Any] = {"modules": {n: _getattr(self.model, n).state_dict() for n in names},
                                 "tensors": {n: _getattr(self.model, n).detach().cpu() for n in tensors or []},
                                 "num_timesteps": int(self.model.num_timesteps)}
        if self.obs_rms is not None:
            items = self.obs_rms.items() if isinstance(self.obs_rms, dict) else [("", self.obs_rms)]
            state["obs_rms"] = {k: {"mean": torch.as_tensor(r.mean), "var": torch.as_tensor(r.var),
                                    "count": float(r.count)} for k, r in items}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, sd in state["modules"].items():
            _getattr(self.model, name).load_state_dict(sd)
        for name, value in state["tensors"].items():
            with torch.no_grad():
                _getattr(self.model, name).copy_(value)
        self.model.num_timesteps = int(state["num_timesteps"])
        if self.obs_rms is not None:
            items = self.obs_rms.items() if isinstance(self.obs_rms, dict) else [("", self.obs_rms)]
            for key, rms in items:
                saved = state["obs_rms"][key]
                rms.mean, rms.var, rms.count = saved["mean"].numpy(), saved["var"].numpy(), saved["count"]


def _getattr(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


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

    def _build(self, observation_space: spaces.Space, action_space: spaces.Space, num_envs: int,
               device: torch.device) -> BaseAlgorithm:
        cfg = self.cfg
        batch = cfg.num_steps * num_envs
        lr = LinearSchedule(cfg.lr, 0.0, 1.0) if cfg.anneal_lr else cfg.lr  # progress 1 -> 0 over learn()'s budget
        model = PPO(policy_name(observation_space), env=None, _init_setup_model=False, device=device,
                    learning_rate=lr, n_steps=cfg.num_steps, batch_size=max(1, batch // cfg.num_minibatches),
                    n_epochs=cfg.update_epochs, gamma=cfg.discount, gae_lambda=cfg.gae_lambda, clip_range=cfg.clip_coef,
                    clip_range_vf=cfg.clip_coef if cfg.clip_vloss else None, normalize_advantage=cfg.norm_adv,
                    ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm,
                    policy_kwargs=dict(net_arch=dict(pi=list(cfg.hidden), vf=list(cfg.hidden)),
                                       activation_fn=torch.nn.Tanh, log_std_init=cfg.init_log_std))
        return self._setup(model, observation_space, action_space, num_envs)


class SB3SACAgent(SB3Agent):
    """SB3 SAC, with HER on GoalEnv dict observations (see SB3SACConfig)."""

    def _algorithm(self) -> tuple[type[BaseAlgorithm], dict[str, Any], dict[str, Any]]:
        """The SB3 class, its extra constructor arguments and extra policy arguments."""
        return SAC, {}, {}

    def _build(self, observation_space: spaces.Space, action_space: spaces.Space, num_envs: int,
               device: torch.device) -> BaseAlgorithm:
        cfg = self.cfg
        algorithm, extra, policy_extra = self._algorithm()
        model = algorithm(policy_name(observation_space), env=None, _init_setup_model=False, device=device,
                    learning_rate=cfg.lr, buffer_size=cfg.buffer_size, learning_starts=cfg.warmup_steps,
                    batch_size=cfg.batch_size, gamma=cfg.discount, tau=cfg.tau, ent_coef=cfg.ent_coef,
                    target_entropy=-float(np.prod(action_space.shape)),  # SB3's "auto" reads a bound env
                    train_freq=cfg.train_freq, gradient_steps=cfg.gradient_steps,
                    policy_kwargs=dict(net_arch=list(cfg.hidden), **policy_extra), **extra)
        # the replay buffer is made in `bind`, where the env (needed by HER) is known; a tiny one until then
        model.buffer_size = 1
        model = self._setup(model, observation_space, action_space, num_envs)
        model.buffer_size = cfg.buffer_size
        return model

    def bind(self, env: gymnasium.vector.VectorEnv, her_allowed: bool = True) -> VecEnv:
        cfg = self.cfg
        goal_env = isinstance(self.observation_space, spaces.Dict) and GOAL_KEYS <= set(self.observation_space.spaces)
        if cfg.her and not goal_env:
            raise ValueError("sb3_sac her=true needs a GoalEnv (observation / achieved_goal / desired_goal)")
        if cfg.her and not her_allowed:
            raise ValueError("sb3_sac her=true with a reward module: HER would relabel with the env's own reward")
        self.her = goal_env and her_allowed if cfg.her is None else bool(cfg.her)
        venv = super().bind(env, her_allowed)
        model = self.model
        if self.her:
            # HER samples only from finished episodes: learn after the first episode of every copy at least
            model.learning_starts = max(cfg.warmup_steps, self.num_envs * self.max_episode_steps)
            model.replay_buffer_class = HerReplayBuffer
            model.replay_buffer = HerReplayBuffer(
                cfg.buffer_size, model.observation_space, model.action_space, env=venv, device=model.device,
                n_envs=self.num_envs, n_sampled_goal=cfg.n_sampled_goal, goal_selection_strategy=cfg.goal_selection_strategy)
        else:
            model.replay_buffer = model.replay_buffer_class(
                cfg.buffer_size, model.observation_space, model.action_space, device=model.device, n_envs=self.num_envs,
                optimize_memory_usage=False)
        return venv


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

    def _algorithm(self) -> tuple[type[BaseAlgorithm], dict[str, Any], dict[str, Any]]:
        cfg = self.cfg
        return (TQC, {"top_quantiles_to_drop_per_net": cfg.top_quantiles_to_drop_per_net},
                {"n_quantiles": cfg.n_quantiles, "n_critics": cfg.n_critics})
