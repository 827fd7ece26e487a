"""N copies of one MJCF scene compiled into a single MuJoCo model, stepped by one `mj_step` call.

Each copy sits in its own frame on a grid (`spacing` metres apart) with names prefixed `e{i}/`. As long as the
scene has no contacts or constraints that span copies, the copies evolve independently and copy i of an N-copy
model follows exactly the trajectory of a 1-copy model with the same state and controls.
"""

from __future__ import annotations

import atexit
import weakref
from collections.abc import Hashable
from pathlib import Path

import mujoco
import numpy as np

from envs.batched import is_positive_int
from envs.gl_fork import before_gl_context

_LIVE_RENDERERS: weakref.WeakSet = weakref.WeakSet()
EGL_NOT_INITIALIZED = 0x3001  # EGL's error code for a call on a display that was terminated


def _close_live_renderers() -> None:
    """Close renderers still open at exit: MuJoCo 3.3's Renderer.__del__ otherwise runs after EGL is torn down and
    prints an EGLError traceback for each. Registered again after each new renderer, so that it usually runs before
    the exit handlers that terminate the EGL display (atexit runs last-registered first). mujoco.egl and dm_control
    (imported by the DMC and OGBench envs) each register one for the same display; when one of them ran first, the
    display took its contexts with it, and the renderer is only marked closed."""
    for renderer in list(_LIVE_RENDERERS):
        try:
            renderer.close()
        except Exception as error:  # noqa: BLE001  (EGLError; its module is loaded only under MUJOCO_GL=egl)
            if getattr(error, "err", None) != EGL_NOT_INITIALIZED:
                raise
            renderer._gl_context._context = None  # freed with the display: nothing left for close / __del__ to free
            renderer.close()


def new_renderer(model: mujoco.MjModel, width: int, height: int) -> mujoco.Renderer:
    """A `mujoco.Renderer` (triton loaded first, see below) that is closed at exit if nobody closed it."""
    load_triton_first()
    before_gl_context()
    renderer = mujoco.Renderer(model, height=height, width=width)
    atexit.unregister(_close_live_renderers)
    atexit.register(_close_live_renderers)
    _LIVE_RENDERERS.add(renderer)
    return renderer


class RendererCache:
    """An owner's `mujoco.Renderer`s, one per key (a frame size, a copy), made by `new_renderer` on first use. A GL
    context cannot be pickled or copied: a pickled or deep-copied cache starts empty, so a copied env makes its own
    renderers on its first render."""

    def __init__(self) -> None:
        self._renderers: dict[Hashable, mujoco.Renderer] = {}

    def __reduce__(self) -> tuple:
        return RendererCache, ()

    def get(self, key: Hashable, model: mujoco.MjModel, width: int, height: int) -> mujoco.Renderer:
        """The renderer for `key`, made for `model` at width x height on first use."""
        renderer = self._renderers.get(key)
        if renderer is None:
            renderer = self._renderers[key] = new_renderer(model, width, height)
        return renderer

    def close(self) -> None:
        """Free the renderers' GL contexts now; a later `get` makes new ones."""
        renderers, self._renderers = self._renderers, {}
        for renderer in renderers.values():
            renderer.close()


def load_triton_first() -> None:
    """Mesa's software EGL (llvmpipe) and triton each carry their own LLVM; a process that loads triton after a
    Mesa context exists segfaults (torch imports triton lazily, e.g. on an optimizer's first step). Loading
    triton before the first context avoids the clash."""
    try:
        import triton  # noqa: F401
    except ImportError:
        pass


class BatchedMujoco:
    """`num_copies` copies of the scene in `xml_path`, with (N, ...) views of their state.

    Positions returned by `site_pos` / set by `set_mocap_pos` are relative to each copy's own origin, so that
    callers never see the grid offsets. `qpos` is raw: free-joint positions there are in world coordinates, so
    subtract / add `qpos_origin` (N, nq) to read / write them copy-relative.
    """

    def __init__(self, xml_path: str | Path, num_copies: int, spacing: float = 2.0) -> None:
        if not is_positive_int(num_copies):
            raise ValueError(f"num_envs={num_copies!r} must be an integer >= 1 (the env's copies)")
        self.num_copies = num_copies
        base = mujoco.MjSpec.from_file(str(xml_path))
        spec = mujoco.MjSpec()
        spec.option = base.option
        spec.visual = base.visual
        cols = int(np.ceil(np.sqrt(num_copies)))
        self.origins = np.zeros((num_copies, 3))
        for i in range(num_copies):
            self.origins[i, :2] = (i % cols) * spacing, (i // cols) * spacing
            frame = spec.worldbody.add_frame(pos=self.origins[i].tolist())
            spec.attach(mujoco.MjSpec.from_file(str(xml_path)), prefix=f"e{i}/", frame=frame)
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        single = base.compile()
        self.nq, self.nv, self.nu = single.nq, single.nv, single.nu
        self.ctrl_low = single.actuator_ctrlrange[:, 0].copy()
        self.ctrl_high = single.actuator_ctrlrange[:, 1].copy()
        # attach() keeps the child's element order, so copy i owns a contiguous block of qpos / qvel / ctrl.
        # A free joint's position is in world coordinates, so it includes its copy's grid offset.
        self.qpos_origin = np.zeros((num_copies, self.nq))
        for j in np.flatnonzero(single.jnt_type == mujoco.mjtJoint.mjJNT_FREE):
            adr = single.jnt_qposadr[j]
            self.qpos_origin[:, adr : adr + 3] = self.origins
        self._mocap = {}
        self._sites = {}
        # Frames are drawn from a one-copy model posed like the copy: the cost of a frame does not grow with N,
        # no other copy can show up in it, and posing it for a goal image leaves the copies' state alone.
        self._render_model, self._render_data = single, mujoco.MjData(single)
        mocap_bodies = [b for b in range(single.nbody) if single.body_mocapid[b] >= 0]
        self._copy_mocap = np.zeros((num_copies, single.nmocap), dtype=int)  # (N, nmocap): copy's mocap ids
        for b in mocap_bodies:
            for i in range(num_copies):
                big = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, f"e{i}/{single.body(b).name}")
                self._copy_mocap[i, single.body_mocapid[b]] = self.model.body_mocapid[big]
        self._renderers = RendererCache()  # one per frame size (pixels and video differ); a copy starts without

    # --- state -------------------------------------------------------------------------------------------
    @property
    def qpos(self) -> np.ndarray:
        """(N, nq) view of the joint positions."""
        return self.data.qpos.reshape(self.num_copies, self.nq)

    @property
    def qvel(self) -> np.ndarray:
        """(N, nv) view of the joint velocities."""
        return self.data.qvel.reshape(self.num_copies, self.nv)

    def site_ids(self, name: str) -> np.ndarray:
        if name not in self._sites:
            self._sites[name] = np.array(
                [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, f"e{i}/{name}") for i in range(self.num_copies)]
            )
        return self._sites[name]

    def site_pos(self, name: str) -> np.ndarray:
        """(N, 3) position of site `name` in each copy's frame (valid after `step` or `forward`)."""
        return self.data.site_xpos[self.site_ids(name)] - self.origins

    def set_mocap_pos(self, body: str, pos: np.ndarray, copies: np.ndarray | None = None) -> None:
        """Move mocap body `body` of the given copies (all by default) to `pos` (K, 3), copy-relative."""
        if body not in self._mocap:
            ids = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, f"e{i}/{body}") for i in range(self.num_copies)]
            self._mocap[body] = self.model.body_mocapid[ids]
        idx = np.arange(self.num_copies) if copies is None else copies
        self.data.mocap_pos[self._mocap[body][idx]] = pos + self.origins[idx]

    # --- dynamics ----------------------------------------------------------------------------------------
    def step(self, ctrl: np.ndarray, substeps: int) -> None:
        """Apply `ctrl` (N, nu) for `substeps` physics steps, then refresh positions for the new state."""
        self.data.ctrl[:] = ctrl.reshape(-1)
        for _ in range(substeps):
            mujoco.mj_step(self.model, self.data)
        # mj_step leaves kinematics one substep stale; recompute them so site positions match qpos.
        mujoco.mj_kinematics(self.model, self.data)

    def forward(self) -> None:
        """Recompute kinematics after writing qpos / mocap positions directly."""
        mujoco.mj_kinematics(self.model, self.data)

    # --- rendering ---------------------------------------------------------------------------------------
    def render(self, copy: int, camera: str, width: int, height: int, qpos: np.ndarray | None = None) -> np.ndarray:
        """(height, width, 3) uint8 image of one copy seen from its camera `camera`; `qpos` (nq,), copy-relative,
        poses the copy for this frame only (goal images)."""
        return self.render_copies(np.array([copy]), camera, width, height, None if qpos is None else qpos[None])[0]

    def render_copies(
        self, copies: np.ndarray, camera: str, width: int, height: int, qpos: np.ndarray | None = None
    ) -> np.ndarray:
        """(K, height, width, 3) uint8 images of the copies in `copies` (K,), each from its own camera `camera`, in
        their current joint and mocap state or, given copy-relative `qpos` (K, nq), posed so."""
        renderer = self._renderers.get((width, height), self._render_model, width, height)
        if qpos is None:
            qpos = self.qpos[copies] - self.qpos_origin[copies]
        data = self._render_data
        frames = np.empty((len(copies), height, width, 3), dtype=np.uint8)
        for k, i in enumerate(copies):
            data.qpos[:] = qpos[k]
            data.mocap_pos[:] = self.data.mocap_pos[self._copy_mocap[i]] - self.origins[i]
            data.mocap_quat[:] = self.data.mocap_quat[self._copy_mocap[i]]
            mujoco.mj_forward(self._render_model, data)
            renderer.update_scene(data, camera=camera)
            renderer.render(out=frames[k])
        return frames

    def close(self) -> None:
        self._renderers.close()
