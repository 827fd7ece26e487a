"""Command-line edges: fail fast on bad config overrides, and turn user errors into one clear line."""

from __future__ import annotations

import contextlib
import difflib
import errno
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import gymnasium
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import DictConfig, OmegaConf

from agents import RENAMED
from agents.checkpoint import CheckpointError
from envs.goal_space import REMOVED_AGENT_OPTIONS

_ABSENT = object()


def _key(override: str) -> str:
    return override.split("=", 1)[0]


def unknown_key_message(cfg: DictConfig, key: str) -> str | None:
    """None if `key` (dotted) exists in `cfg`, else a message naming it and the valid keys at that level."""
    if OmegaConf.select(cfg, key, default=_ABSENT) is not _ABSENT:
        return None
    head, _, last = key.rpartition(".")
    if head == "agent" and last in RENAMED:
        return f"agent.{last} is now agent.{RENAMED[last]} (one name per concept across agents)"
    if head == "agent" and last in REMOVED_AGENT_OPTIONS:
        return (f"agent.{last} no longer exists: what a goal names is the env's, for every agent; choose "
                "env.kwargs.goal_space=object|object_and_effector|push_behind (envs/goal_space.py)")
    node, prefix = cfg, []
    for part in key.split(".")[:-1]:
        if not OmegaConf.is_dict(node) or part not in node:
            break
        node, prefix = node[part], prefix + [part]
    valid = sorted(node.keys()) if OmegaConf.is_dict(node) else []
    where = ".".join(prefix) or "<top level>"
    close = difflib.get_close_matches(key.split(".")[len(prefix)], valid, n=1)
    hint = f" Did you mean '{'.'.join(prefix + close)}'?" if close else ""
    return f"unknown config key '{key}'.{hint} Valid keys under {where}: {valid}"


def one_line(message: Any) -> str:
    """Hydra's error text on one line, without its config search path."""
    return " ".join(str(message).split("Config search path")[0].split())


def refuse(message: str) -> NoReturn:
    """Print `error: message` and exit 2 (a refused command line)."""
    sys.stderr.write(f"error: {message}\n")
    sys.exit(2)


def check_overrides(config_dir: Path, config_name: str, overrides: list[str]) -> None:
    """Compose `config_name` with the CLI `overrides` (`+group=NAME` ones included); on failure print one line naming
    the bad value and the valid choices, and exit 2."""
    groups = {p.name for p in config_dir.iterdir() if p.is_dir()}
    plain = [o for o in overrides if "=" in o and not o.startswith(("hydra.", "+", "~", "-"))]
    plain += [o for o in overrides if "=" in o and o.startswith("+") and _key(o)[1:] in groups]  # +preset=gpu
    with initialize_config_dir(config_dir=str(config_dir.resolve()), version_base="1.3"):
        try:
            compose(config_name, overrides=plain)
            return
        except MissingConfigException as err:  # agent=foo, +preset=foo
            group, _, name = (err.missing_cfg_file or "").partition("/")
            if group in groups and err.options:
                refuse(f"{group}={name} is not one of the {group} configs: {', '.join(err.options)} "
                       f"(scripts/conf/{group}/)")
            refuse(one_line(err))
        except ConfigCompositionException as err:
            try:
                base = compose(config_name, overrides=[o for o in plain if _key(o).lstrip("+") in groups])
            except ConfigCompositionException as group_err:  # preset=gpu: a group outside the defaults needs a +
                refuse(one_line(group_err))
            for override in plain:
                if _key(override) not in groups and (message := unknown_key_message(base, _key(override))):
                    refuse(message)
            refuse(one_line(err.__cause__ or err))


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Report bad input (ValueError, unusable checkpoint or rollout file) as `error: ...` and exit 2, without a
    traceback; real bugs still raise."""
    try:
        yield
    except (ValueError, CheckpointError, FileNotFoundError) as err:
        sys.stderr.write(f"error: {err}\n")
        sys.exit(2)


# run keys of scripts/conf/train.yaml, and env keys of scripts/conf/env/*.yaml: name -> (rule, accepts null)
RUN_KEYS = {"seed": ("int >= 0", False), "total_env_steps": ("int > 0", False),
            "total_gradient_steps": ("int > 0", False), "eval_every": ("int > 0", False),
            "eval_episodes": ("int > 0", False), "video_episodes": ("int >= 0", False),
            "checkpoint_every": ("int > 0", False), "keep_checkpoints": ("int >= 0", False),
            "log_every_s": ("number >= 0", False), "time_limit_s": ("number > 0", True), "torch_threads": ("int > 0", True)}
ENV_KEYS = {"num_envs": ("int > 0", False), "max_episode_steps": ("int > 0", True), "eval_num_envs": ("int > 0", True)}
RUN_SWITCHES = ("eval_at_start", "progress")  # run keys that are true / false
# reward keys of scripts/conf/reward/*.yaml (each reward has some of them), its online learning's and teacher's
REWARD_KEYS = {"ensemble_size": ("int > 0", False), "hidden_dim": ("int > 0", False), "num_layers": ("int > 0", False),
               "lr": ("number > 0", False), "chunk_size": ("int > 0", False), "alpha": ("number >= 0", False),
               "gamma": ("number > 0", True)}
ONLINE_KEYS = {"query_every": ("int >= 0", False), "first_query": ("int >= 0", False), "queries": ("int > 0", False),
               "max_labels": ("int > 0", True), "candidates": ("int > 0", False), "segment_length": ("int > 0", False),
               "window": ("int > 0", False), "epochs": ("int > 0", False), "batch_size": ("int > 0", False)}
TEACHER_KEYS = {"beta": ("number > 0", True), "error_rate": ("number >= 0", False), "tie_threshold": ("number >= 0", False)}


def check_keys(node: DictConfig, rules: dict[str, tuple[str, bool]], prefix: str = "") -> None:
    """ValueError naming the first key of `rules` in `node` whose value is of the wrong type or out of range."""
    for key, (rule, nullable) in rules.items():
        if key not in node:
            continue
        value = node[key]
        if value is None and nullable:
            continue
        kind, op, bound = rule.split()
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = numeric and (kind == "number" or isinstance(value, int))
        ok = ok and (value > float(bound) if op == ">" else value >= float(bound))
        if not ok:
            hint = " or null" if nullable else ""
            raise ValueError(f"{prefix}{key}={value!r} must be {'an integer' if kind == 'int' else 'a number'} {op} {bound}{hint}")


def check_env_id(env_id: str) -> None:
    """ValueError naming `env.id` and crlab's ids when Gymnasium cannot find it (`env=NAME` picks a config whose id
    is registered; `env.id=...` overrides it), before anything is built."""
    try:
        gymnasium.spec(env_id)  # "module:Id" imports the module that registers it, as gymnasium.make does
    except (gymnasium.error.Error, ModuleNotFoundError) as err:
        crlab_ids = sorted(i for i in gymnasium.registry if i.startswith("crlab/"))
        raise ValueError(f"env.id={env_id!r} is not a registered Gymnasium id ({err}); crlab's: {crlab_ids}") from err


def check_reward_config(reward: DictConfig | None, prefix: str = "reward.") -> None:
    """ValueError naming the first reward option of the wrong type or range (reward.hidden_dim=-1,
    reward.online.queries=0, ...)."""
    if reward is None:
        return
    check_keys(reward, REWARD_KEYS, prefix)
    if reward.get("online") is not None:
        check_keys(reward.online, ONLINE_KEYS, f"{prefix}online.")
        if reward.online.get("teacher") is not None:
            check_keys(reward.online.teacher, TEACHER_KEYS, f"{prefix}online.teacher.")


def check_run_config(cfg: DictConfig) -> None:
    """ValueError naming the first run, env or reward key of the wrong type or range (seed=abc, eval_every=0,
    total_env_steps=-5, env.num_envs=0, reward.hidden_dim=-1, ...), so that a run refuses bad input before it builds
    anything or writes a file."""
    check_keys(cfg, RUN_KEYS)
    check_reward_config(cfg.get("reward"))
    if "env" in cfg:
        check_keys(cfg.env, ENV_KEYS, "env.")
    for key in RUN_SWITCHES:
        if key in cfg and not isinstance(cfg[key], bool):
            raise ValueError(f"{key}={cfg[key]!r} must be true or false")


def check_run_paths(argv: list[str]) -> None:
    """Before Hydra creates anything: `resume=DIR` must be a run directory (a config.yaml or checkpoints/ in it),
    and `hydra.run.dir=DIR` must be creatable (its nearest existing parent a writable folder). Exit 2 otherwise.
    Nothing is left behind: the probe is a temporary folder, removed at once."""
    values = dict(a.split("=", 1) for a in argv if "=" in a)
    resume = values.get("resume")
    if resume not in (None, "null"):
        run = Path(resume)
        if not run.is_dir() or not ((run / "config.yaml").is_file() or (run / "checkpoints").is_dir()):
            sys.stderr.write(f"error: resume={resume} is not a run directory (no config.yaml or checkpoints/ in it)\n")
            sys.exit(2)
    target = values.get("hydra.run.dir")
    if target and "${" not in target:
        existing = Path(target)
        while not os.path.lexists(existing) and existing != existing.parent:
            existing = existing.parent
        try:  # Hydra would fail with a traceback; a folder made and removed in the nearest existing one tells first
            if not existing.is_dir():
                code = errno.EEXIST if existing == Path(target) else errno.ENOTDIR
                raise OSError(code, os.strerror(code))
            os.rmdir(tempfile.mkdtemp(prefix=".crlab_write_test", dir=existing))
        except OSError as err:
            sys.stderr.write(f"error: hydra.run.dir={target} cannot be created or written ({err.strerror})\n")
            sys.exit(2)


def _plain_path(value: str) -> bool:
    """Whether `value` is a path Hydra's override grammar reads as it is (no quotes, escapes or interpolations)."""
    return bool(value) and all(c.isascii() and (c.isalnum() or c in "/_-.+@:%") for c in value)


def pin_run_dir(config_dir: Path, config_name: str, argv: list[str]) -> tuple[list[str], Path | None]:
    """`argv` with `hydra.run.dir` resolved now and given explicitly, and that directory; (argv, None) where it cannot
    be told beforehand (command-line flags such as --multirun, a value Hydra's grammar would need escaped). Hydra
    resolves `${now:...}` itself a moment later, so without this the folder it makes would not be known in advance."""
    if any(a.startswith("-") for a in argv):
        return argv, None
    given = next((a.split("=", 1)[1] for a in reversed(argv) if a.startswith("hydra.run.dir=")), None)
    if given is not None and _plain_path(given):
        return argv, Path(given)
    try:
        with initialize_config_dir(config_dir=str(config_dir.resolve()), version_base="1.3"):
            cfg = compose(config_name, overrides=list(argv), return_hydra_config=True)
            run_dir = str(cfg.hydra.run.dir)
    except Exception:  # whatever Hydra finds wrong here, it reports itself when the app starts
        return argv, None
    if not _plain_path(run_dir):
        return argv, None
    return [a for a in argv if not a.startswith("hydra.run.dir=")] + [f"hydra.run.dir={run_dir}"], Path(run_dir)


@contextlib.contextmanager
def removed_if_refused(run_dir: Path | None) -> Iterator[None]:
    """On a refusal (exit 2, see `user_errors`): remove `run_dir` and the folders above it that did not exist when this
    began, as far as they are still empty. Hydra makes its run directory before the app can check its input; a
    folder that existed, or that holds anything (a run's outputs), is never touched."""
    made: list[Path] = []  # deepest first
    folder = Path(os.path.abspath(run_dir)) if run_dir is not None else None
    while folder is not None and not os.path.lexists(folder) and folder != folder.parent:
        made.append(folder)
        folder = folder.parent
    try:
        yield
    except SystemExit as stop:
        if stop.code == 2:
            for path in made:
                try:
                    path.rmdir()
                except FileNotFoundError:
                    continue
                except OSError:  # not empty (or not a folder): keep it and everything above
                    break
        raise


def start(main: Callable[[], Any], config_dir: Path, config_name: str) -> None:
    """Run the Hydra app `main` on sys.argv so that a refused input leaves the file system as it was: overrides are
    checked first (`check_overrides`), and the run directory Hydra makes is removed again on a refusal."""
    check_overrides(config_dir, config_name, sys.argv[1:])
    sys.argv[1:], run_dir = pin_run_dir(config_dir, config_name, sys.argv[1:])
    with removed_if_refused(run_dir):
        main()
