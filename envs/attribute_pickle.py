"""Pickling the suites' envs by their attributes, so that a pickled or deep-copied crlab env carries its episode.

The suites' own pickling rebuilds an env from its constructor arguments (gymnasium's EzPickle; MetaWorld recompiles
its model), which loses the episode, and GL objects cannot be copied at all. `pickle_by_attributes` writes every
Gymnasium env it meets as its attributes instead, and:
- drops renderers (`mujoco.Renderer`; a gymnasium MuJoCo env's viewers): their owners make new ones on use;
- drops dm_control MJCF elements (OGBench keeps its scene's; it builds them again at its next reset, and the compiled
  model and data travel as they are);
- writes MuJoCo view settings (`MjvOption`, `MjvCamera`) as their fields;
- keeps a numpy view into an `MjData` / `MjModel` a view into the copy's (MetaWorld keeps some "initial" positions
  as views into `data.xpos`, so they follow the simulation: the copy's must too, or its rewards differ);
- carries by value what plain pickle cannot name (cloudpickle), such as the class OGBench's maze factory defines per
  call.
"""

from __future__ import annotations

import copyreg
import importlib
import io
import pickle
import sys
import types
from typing import Any, Iterator

import cloudpickle
import gymnasium
import mujoco
import numpy as np


def pickle_by_attributes(obj: Any) -> bytes:
    """`obj` (an env, or a list of envs) pickled as described above; `pickle.loads` makes the copy."""
    buffer = io.BytesIO()
    _AttributePickler(buffer, list(_mujoco_structs(obj, set(), depth=4))).dump(obj)
    return buffer.getvalue()


def _mujoco_structs(obj: Any, seen: set[int], depth: int) -> Iterator[mujoco.MjData | mujoco.MjModel]:
    """The MjData / MjModel objects held by the envs in `obj` (nested envs and containers included)."""
    if id(obj) in seen or depth < 0:
        return
    seen.add(id(obj))
    if isinstance(obj, (mujoco.MjData, mujoco.MjModel)):
        yield obj
    elif isinstance(obj, gymnasium.Env):
        for value in vars(obj).values():
            yield from _mujoco_structs(value, seen, depth - 1)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _mujoco_structs(value, seen, depth - 1)
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _mujoco_structs(value, seen, depth - 1)


def _set_attributes(obj: Any, attributes: dict[str, Any]) -> None:
    obj.__dict__.update(attributes)


def _view_settings(cls: type, fields: dict[str, Any]) -> Any:
    settings = cls()
    for name, value in fields.items():
        setattr(settings, name, value)
    return settings


def _field_view(struct: Any, field: str, offset: int, shape: tuple[int, ...], strides: tuple[int, ...],
                dtype: np.dtype) -> np.ndarray:
    return np.ndarray(shape, dtype, buffer=getattr(struct, field), offset=offset, strides=strides)


_ARRAY_FIELDS: dict[type, list[str]] = {}  # MjData / MjModel -> the names of their array fields


def _array_fields(struct: Any) -> list[str]:
    if type(struct) not in _ARRAY_FIELDS:
        _ARRAY_FIELDS[type(struct)] = [n for n in dir(struct) if not n.startswith("_")
                                       and isinstance(getattr(struct, n, None), np.ndarray)]
    return _ARRAY_FIELDS[type(struct)]


class _AttributePickler(cloudpickle.Pickler):
    def __init__(self, file: io.BytesIO, structs: list[mujoco.MjData | mujoco.MjModel]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.structs = structs

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, gymnasium.Env):
            return copyreg.__newobj__, (type(obj),), dict(vars(obj)), None, None, _set_attributes
        if isinstance(obj, np.ndarray) and type(obj.base).__name__ == "PyCapsule":  # memory MuJoCo owns
            view = self._mujoco_view(obj)
            if view is not None:
                return view
        if isinstance(obj, types.ModuleType):  # gymnasium-robotics keeps its utility modules as attributes
            return importlib.import_module, (obj.__name__,)
        if isinstance(obj, mujoco.Renderer) or type(obj).__module__.startswith("dm_control.mjcf"):
            return type(None), ()
        if isinstance(obj, (mujoco.MjvOption, mujoco.MjvCamera)):
            fields = {n: getattr(obj, n) for n in dir(obj) if not n.startswith("_") and not callable(getattr(obj, n))}
            return _view_settings, (type(obj), fields)
        rendering = sys.modules.get("gymnasium.envs.mujoco.mujoco_rendering")
        if rendering is not None and isinstance(obj, rendering.MujocoRenderer):
            state = {**vars(obj), "_viewers": {}, "viewer": None}
            return copyreg.__newobj__, (type(obj),), state, None, None, _set_attributes
        return super().reducer_override(obj)

    def _mujoco_view(self, array: np.ndarray) -> tuple | None:
        """How to make `array` again as the same view into the copy's MjData / MjModel (None: not a view into one)."""
        for struct in self.structs:
            for field in _array_fields(struct):
                base = getattr(struct, field)
                if base.size and np.may_share_memory(array, base):  # fields are disjoint blocks: bounds decide
                    offset = array.__array_interface__["data"][0] - base.__array_interface__["data"][0]
                    return _field_view, (struct, field, offset, array.shape, array.strides, array.dtype)
        return None
