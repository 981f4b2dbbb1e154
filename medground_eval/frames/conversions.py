"""Frame kinds and presets: how a model writes box coordinates, and the conversion to original-image pixels.

Frame kinds (coordinates per axis, x first, matching the box layout):

- ``"pixel"``: original image pixels, extent ``[0, W]`` (2D and 3D).
- ``"norm1000"``: 0-1000 on each axis, whatever the image size (Qwen2-VL, Qwen3-VL, InternVL) (2D and 3D).
- ``"norm1"``: 0-1 on each axis (2D and 3D).
- ``"norm1024"``: 1024 bins per axis written as integers 0-1023, a coordinate ``v`` is ``v / 1024`` of the side
  (PaliGemma's ``<locNNNN>`` tokens, big_vision's convention); 2D only.
- ``"bins1000"``: 1000 bins per axis, 0-999, a coordinate ``v`` is the bin centre ``(v + 0.5) / 1000`` of the side
  (Florence-2's ``<loc_N>`` tokens: its ``BoxQuantizer`` floors into 1000 bins and dequantizes at the centre); 2D only.
- ``"resized"``: absolute pixels of the model's resized input image (Qwen2.5-VL). The input size is
  :func:`smart_resize` of the image size unless given; 2D only.
- ``"m3d-npy"``: index space of M3D's preprocessed ``1 x 32 x 256 x 256`` volume (3D only, see below).

Axis order is part of a frame: ``axes="yx"`` (Gemini's ``box_2d``, PaliGemma's loc tokens) means a box is written
``[y1, x1, y2, x2]``; :meth:`Frame.to_pixels` swaps it to ``[x1, y1, x2, y2]`` once, before scaling, and
:meth:`Frame.from_pixels` writes it back y-first. The parser never swaps (``ParsedBox.axes`` only records what a
dialect documents). Presets: ``gemini`` (y-first 0-1000), ``paligemma`` (y-first ``norm1024``), ``florence-2``
(x-first ``bins1000``).

A frame has one canonical text, :attr:`Frame.spec`: a preset name when it equals one, else the kind with the
settings that differ from the kind's preset, ``"resized:max_pixels=1003520"``; :func:`get_frame` reads it back.
Predictions files, labels and ``metrics.json`` record a frame by this text.

3D (M3D-RefSeg): boxes are ``[x1, y1, z1, x2, y2, z2]`` and the image size ``(W, H, D)`` is the volume shape
``(X, Y, Z)`` of nibabel's array; ``"voxel"`` is an alias of ``"pixel"``. ``"norm1000"`` / ``"norm1"`` scale each
axis by its own length.

The ``"m3d-npy"`` frame. M3D's ``Data/process/m3d_refseg_data_prepare.py`` (BAAI-DCAI/M3D) reads
``get_fdata()`` of shape ``(X, Y, Z)``, transposes it with ``(2, 0, 1)`` and adds a channel, giving
``(1, Z, X, Y)``; MONAI then rescales intensities (0.5-99.5th percentiles to [0, 1], clipped), crops to the
foreground (``CropForegroundd``, source ``image``, margin 0: the bounding box of voxels above the 0.5th percentile)
and resizes the crop to ``(D, H, W) = (32, 256, 256)`` (``Resized``; trilinear for the CT, nearest for the mask).
A box in this frame is written in the npy's axis order and index units: ``[d1, h1, w1, d2, h2, w2]`` with
``d`` along the original z, ``h`` along x and ``w`` along y, extent ``[0, 32] x [0, 256] x [0, 256]``, upper bound
exclusive. :meth:`Frame.to_pixels` needs the crop box ``[x1, y1, z1, x2, y2, z2]`` in original voxels as
``input_size`` (``medground_eval.datasets.m3d_refseg.npy_crop_box`` recomputes it from the CT); a box edge ``e``
maps to ``x1 + e * (x2 - x1) / 256`` on x (``/ 256`` on y, ``/ 32`` on z), the edge mapping of a resize with
``align_corners=False``. docs/datasets.md lists what this mapping does not recover.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from medground_eval.boxes import as_boxes

FrameKind = Literal["pixel", "norm1000", "norm1", "norm1024", "bins1000", "resized", "m3d-npy"]
FRAME_KINDS: tuple[str, ...] = ("pixel", "norm1000", "norm1", "norm1024", "bins1000", "resized", "m3d-npy")
AXES: tuple[str, ...] = ("xy", "yx")
_NORM_EXTENT = {"norm1000": 1000.0, "norm1": 1.0, "norm1024": 1024.0}
"""Per-axis extent of the normalized kinds: pixel = v * side / extent."""
_BINS = 1000
"""Bins per axis of ``bins1000``: pixel = (v + 0.5) * side / bins, in frame for v in [0, bins - 1]."""
_TWO_D_ONLY = ("norm1024", "bins1000", "resized")

M3D_NPY_SHAPE: tuple[int, int, int] = (32, 256, 256)
"""Spatial shape ``(D, H, W)`` of M3D's preprocessed volumes (``ct.npy`` / ``mask.npy`` are ``(1, D, H, W)``)."""
M3D_NPY_AXES: tuple[int, int, int] = (2, 0, 1)
"""The original axis (0 = x, 1 = y, 2 = z) along each npy spatial axis ``(D, H, W)``: ``transpose(2, 0, 1)``."""
_NPY_TO_XYZ = np.argsort(M3D_NPY_AXES)  # the npy axis holding x, y, z
_NPY_BOX_TO_XYZ = np.concatenate([_NPY_TO_XYZ, _NPY_TO_XYZ + 3])  # column order: npy-order box -> xyz box
_XYZ_BOX_TO_NPY = np.concatenate([M3D_NPY_AXES, np.add(M3D_NPY_AXES, 3)])  # and back
_NPY_EXTENT = np.array(M3D_NPY_SHAPE * 2, dtype=np.float64)
_NPY_SHAPE_XYZ = np.array(M3D_NPY_SHAPE, dtype=np.float64)[_NPY_TO_XYZ]


def smart_resize(
    height: int,
    width: int,
    factor: int = 28,
    min_pixels: int = 4 * 28 * 28,
    max_pixels: int = 16384 * 28 * 28,
) -> tuple[int, int]:
    """The ``(height, width)`` Qwen2.5-VL's image processor resizes an image to (transformers' rule).

    Both sides are rounded to the nearest multiple of ``factor`` (Python ``round``: halves to even); if the
    result has more than ``max_pixels`` pixels, the image is scaled down to fit and sides rounded down
    (at least ``factor``); if fewer than ``min_pixels``, it is scaled up and sides rounded up.
    Raises ValueError for non-positive sizes or factor, or an aspect ratio above 200.

    >>> smart_resize(2500, 2048, max_pixels=1280 * 28 * 28)
    (1092, 896)
    """
    if not (height > 0 and width > 0):
        raise ValueError(f"smart_resize: height and width must be positive, got height={height}, width={width}")
    if factor <= 0:
        raise ValueError(f"smart_resize: factor must be positive, got {factor}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(
            f"smart_resize: absolute aspect ratio must be at most 200, got {max(height, width) / min(height, width)}"
            f" for height={height}, width={width}"
        )
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


class FrameConversion(NamedTuple):
    """Boxes in original-image pixels, clipped to the image, and per box whether any coordinate
    (NaN included) lay outside the frame's extent before clipping."""

    boxes: np.ndarray
    out_of_frame: np.ndarray


def _sizes(size: ArrayLike, dims: int, n: int, name: str) -> np.ndarray:
    """``size`` as a positive finite ``(n, dims)`` float array (one shared size or one row per box)."""
    array = np.asarray(size, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != dims or array.shape[0] not in (1, n):
        raise ValueError(
            f"{name}: expected {dims} numbers (one size for all boxes) or an ({n}, {dims}) array (one per box),"
            f" got shape {array.shape}"
        )
    bad = ~(np.isfinite(array) & (array > 0))
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise ValueError(f"{name}: sizes must be positive and finite, got {array[row].tolist()} (row {row})")
    return np.broadcast_to(array, (n, dims))


@dataclass(frozen=True)
class Frame:
    """A coordinate frame; ``factor`` / ``min_pixels`` / ``max_pixels`` only matter to ``"resized"``; ``axes`` is
    ``"xy"`` (x first) or ``"yx"`` (y first, 2D only)."""

    kind: FrameKind
    factor: int = 28
    min_pixels: int = 4 * 28 * 28
    max_pixels: int = 16384 * 28 * 28
    axes: str = "xy"

    def __post_init__(self) -> None:
        if self.kind not in FRAME_KINDS:
            raise ValueError(f"Frame kind {self.kind!r} is unknown: expected one of {', '.join(FRAME_KINDS)}")
        if self.axes not in AXES:
            raise ValueError(f"Frame axes {self.axes!r} is unknown: expected 'xy' (x first) or 'yx' (y first)")
        for name in ("factor", "min_pixels", "max_pixels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"Frame {name} must be a positive integer, got {value!r}")
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"Frame min_pixels ({self.min_pixels}) must not exceed max_pixels ({self.max_pixels})")

    def _sizes_and_extent(
        self, boxes: np.ndarray, image_size: ArrayLike, input_size: ArrayLike | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per box, as ``(n, 2 * d)`` arrays (lower and upper corner alike): the image size and the frame's extent."""
        n, dims = boxes.shape[0], boxes.shape[1] // 2
        if dims != 2 and (self.kind in _TWO_D_ONLY or self.axes != "xy"):
            what = f"the {self.kind!r} frame" if self.kind in _TWO_D_ONLY else "a y-first frame"
            raise ValueError(f"{what} is 2D only, got boxes with {2 * dims} numbers")
        image = _sizes(image_size, dims, n, "image_size")
        if self.kind == "pixel":
            extent = image
        elif self.kind in _NORM_EXTENT:
            extent = np.full_like(image, _NORM_EXTENT[self.kind])
        elif self.kind == "bins1000":
            extent = np.full_like(image, float(_BINS))
        elif input_size is None:
            extent = self.input_sizes(image)
        else:
            extent = self._given_input_sizes(input_size, image)
        return np.concatenate([image, image], axis=1), np.concatenate([extent, extent], axis=1)

    def _given_input_sizes(self, input_size: ArrayLike, image: np.ndarray) -> np.ndarray:
        """Given input sizes as ``(n, 2)``; all-NaN rows (not given) get :func:`smart_resize` of the image size."""
        given = np.array(input_size, dtype=np.float64)
        if given.shape == image.shape:
            missing = np.isnan(given).all(axis=1)
            given[missing] = self.input_sizes(image[missing])
        return _sizes(given, 2, len(image), "input_size")

    def input_sizes(self, image_size: ArrayLike) -> np.ndarray:
        """Model input size ``(w, h)`` per row of ``(W, H)`` image sizes (``(n, 2)`` in, ``(n, 2)`` out)."""
        image = np.atleast_2d(np.asarray(image_size, dtype=np.float64))
        unique, inverse = np.unique(image, axis=0, return_inverse=True)
        resized = np.array(
            [smart_resize(h, w, self.factor, self.min_pixels, self.max_pixels)[::-1] for w, h in unique.tolist()],
            dtype=np.float64,
        ).reshape(-1, 2)
        return resized[inverse.reshape(-1)]

    def to_pixels(
        self, boxes: ArrayLike, image_size: ArrayLike, input_size: ArrayLike | None = None
    ) -> FrameConversion:
        """Boxes written in this frame, in original-image pixels, clipped to ``[0, W] x [0, H] (x [0, D])``.

        ``image_size`` is ``(W, H)`` / ``(W, H, D)`` for all boxes or an ``(N, d)`` array (one row per box).
        ``input_size`` (``"resized"``) is the model input ``(w, h)`` or an ``(N, 2)`` array in which an
        all-NaN row means "not given"; by default :func:`smart_resize` of the image size. For ``"m3d-npy"`` it is
        the foreground crop box ``[x1, y1, z1, x2, y2, z2]`` in original voxels (or ``(N, 6)``), required.
        ``out_of_frame[i]`` is True when a coordinate of box ``i`` lay outside the frame's extent (``[0, 1000]``,
        ``[0, 1]``, ``[0, W]``, ``[0, w]``, ``[0, 32] x [0, 256] x [0, 256]``) before clipping.
        Raises ValueError for a size that is not positive and finite, or a missing / invalid crop box.
        """
        b = as_boxes(boxes)
        if self.kind == "m3d-npy":
            image, origin, scale = self._npy_geometry(b, image_size, input_size)
            out_of_frame = ~((b >= 0) & (b <= _NPY_EXTENT)).all(axis=1)
            pixels = origin + b[:, _NPY_BOX_TO_XYZ] * scale
        else:
            b = self.xy(b)
            image, extent = self._sizes_and_extent(b, image_size, input_size)
            if self.kind == "bins1000":
                out_of_frame = ~((b >= 0) & (b <= extent - 1)).all(axis=1)
                pixels = (b + 0.5) * image / extent
            else:
                out_of_frame = ~((b >= 0) & (b <= extent)).all(axis=1)
                pixels = b.copy() if self.kind == "pixel" else b * image / extent
        np.clip(pixels, 0.0, image, out=pixels)
        return FrameConversion(pixels, out_of_frame)

    def xy(self, boxes: np.ndarray) -> np.ndarray:
        """``(N, 4)`` boxes as written in this frame, x first: ``[y1, x1, y2, x2]`` columns swapped when ``axes`` is
        ``"yx"`` (the one place a y-first box is swapped; its own inverse), else unchanged."""
        return boxes[:, [1, 0, 3, 2]] if self.axes == "yx" and boxes.shape[1] == 4 else boxes

    @property
    def spec(self) -> str:
        """The canonical text of this frame (see the module doc), which :func:`get_frame` reads back."""
        exact = next((name for name, preset in FRAME_PRESETS.items() if preset == self), None)
        if exact is not None:
            return exact
        # Every kind is a preset of its own name (x first, default settings); the settings that differ follow it.
        reference = FRAME_PRESETS[self.kind]
        changed = [f"{name}={getattr(self, name)}" for name in (*_OVERRIDES, "axes")
                   if getattr(self, name) != getattr(reference, name)]
        return f"{self.kind}:{','.join(changed)}"

    def from_pixels(self, boxes: ArrayLike, image_size: ArrayLike, input_size: ArrayLike | None = None) -> np.ndarray:
        """Inverse of :meth:`to_pixels` (without clipping): original-image pixel boxes written in this frame
        (for ``"m3d-npy"``: in the npy's axis order ``[d1, h1, w1, d2, h2, w2]``)."""
        b = as_boxes(boxes)
        if self.kind == "m3d-npy":
            _, origin, scale = self._npy_geometry(b, image_size, input_size)
            return ((b - origin) / scale)[:, _XYZ_BOX_TO_NPY]
        image, extent = self._sizes_and_extent(b, image_size, input_size)
        if self.kind == "bins1000":
            return self.xy(b * extent / image - 0.5)
        return self.xy(b.copy() if self.kind == "pixel" else b * extent / image)

    def _npy_geometry(
        self, boxes: np.ndarray, image_size: ArrayLike, input_size: ArrayLike | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For ``"m3d-npy"``, per box as ``(n, 6)`` x, y, z arrays: the volume size, the crop's lower corner and the
        original voxels per npy voxel. ``input_size`` is the crop box ``(6,)`` or ``(n, 6)``; all-NaN rows are
        "not given", which this frame cannot guess: ValueError naming the row."""
        n = boxes.shape[0]
        if boxes.shape[1] != 6:
            raise ValueError(f"the 'm3d-npy' frame is 3D only, got boxes with {boxes.shape[1]} numbers")
        image = _sizes(image_size, 3, n, "image_size")
        if input_size is None:
            raise ValueError(
                "the 'm3d-npy' frame needs the foreground crop box of each volume as input_size"
                " ([x1, y1, z1, x2, y2, z2] in original voxels; see m3d_refseg.npy_crop_box)"
            )
        crop = np.asarray(input_size, dtype=np.float64)
        crop = crop[None, :] if crop.ndim == 1 else crop
        if crop.ndim != 2 or crop.shape[1] != 6 or crop.shape[0] not in (1, n):
            raise ValueError(
                f"input_size: the 'm3d-npy' frame expects a crop box of 6 numbers or an ({n}, 6) array (one per box),"
                f" got shape {crop.shape}"
            )
        crop = np.broadcast_to(crop, (n, 6))
        missing = np.isnan(crop).all(axis=1)
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise ValueError(f"input_size: no crop box given for row {row}: the 'm3d-npy' frame needs one per volume")
        lo, hi = crop[:, :3], crop[:, 3:]
        inside = (lo >= 0) & (hi > lo) & (hi <= image)
        bad = ~(np.isfinite(crop).all(axis=1) & inside.all(axis=1))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"input_size: crop box {crop[row].tolist()} (row {row}) is not a box inside the volume"
                f" {image[row].tolist()}: expected finite 0 <= x1 < x2 <= X, 0 <= y1 < y2 <= Y, 0 <= z1 < z2 <= Z"
            )
        scale = (hi - lo) / _NPY_SHAPE_XYZ
        return np.hstack([image, image]), np.hstack([lo, lo]), np.hstack([scale, scale])


_QWEN25 = Frame("resized", factor=28, min_pixels=4 * 28 * 28, max_pixels=16384 * 28 * 28)

FRAME_PRESETS: dict[str, Frame] = {
    "pixel": Frame("pixel"),
    "voxel": Frame("pixel"),
    "norm1000": Frame("norm1000"),
    "norm1": Frame("norm1"),
    "resized": _QWEN25,
    "qwen2-vl": Frame("norm1000"),
    "qwen2.5-vl": _QWEN25,
    "qwen3-vl": Frame("norm1000"),
    "internvl": Frame("norm1000"),
    "gemini": Frame("norm1000", axes="yx"),
    "norm1024": Frame("norm1024"),
    "paligemma": Frame("norm1024", axes="yx"),
    "bins1000": Frame("bins1000"),
    "florence-2": Frame("bins1000"),
    "m3d-npy": Frame("m3d-npy"),
}
"""Frames by name: the kinds themselves, and the model families' conventions (docs/frames.md)."""
_OVERRIDES = ("factor", "min_pixels", "max_pixels")


def get_frame(spec: str | Frame, **overrides: int) -> Frame:
    """The frame named ``spec`` (a key of :data:`FRAME_PRESETS`, case-insensitive, optionally followed by settings as
    :attr:`Frame.spec` writes them: ``"qwen2.5-vl:max_pixels=1003520"``) or ``spec`` itself, with ``overrides``
    (``factor``, ``min_pixels``, ``max_pixels``) replaced, as processors allow.

    Raises ValueError for an unknown name (listing the known ones), an unknown override or a bad setting.

    >>> frame = get_frame("qwen2.5-vl", max_pixels=1280 * 28 * 28)
    >>> frame.kind, frame.min_pixels, frame.max_pixels
    ('resized', 3136, 1003520)
    """
    if isinstance(spec, Frame):
        frame = spec
    else:
        key, _, settings = str(spec).strip().lower().partition(":")
        key = key.strip()
        if key not in FRAME_PRESETS:
            raise ValueError(f"unknown frame {spec!r}: expected one of {', '.join(FRAME_PRESETS)}"
                             " (optionally with settings, e.g. 'qwen2.5-vl:max_pixels=1003520')")
        frame = FRAME_PRESETS[key]
        if settings.strip():
            frame = dataclasses.replace(frame, **_settings(spec, settings))
    unknown = sorted(set(overrides) - set(_OVERRIDES))
    if unknown:
        raise ValueError(f"unknown frame override(s) {', '.join(unknown)}: expected any of {', '.join(_OVERRIDES)}")
    return dataclasses.replace(frame, **overrides) if overrides else frame


def _settings(spec: str, text: str) -> dict[str, object]:
    """``"min_pixels=3136,max_pixels=1003520,axes=yx"`` as keyword arguments of :class:`Frame` (ValueError if bad)."""
    out: dict[str, object] = {}
    for part in text.split(","):
        name, equals, value = (p.strip() for p in part.partition("="))
        if not equals or name not in (*_OVERRIDES, "axes"):
            raise ValueError(f"frame {spec!r}: setting {part.strip()!r} is not name=value with name one of "
                             f"{', '.join((*_OVERRIDES, 'axes'))}")
        if name == "axes":
            out[name] = value
        elif value.isdigit():
            out[name] = int(value)
        else:
            raise ValueError(f"frame {spec!r}: {name} = {value!r}: expected a positive integer")
    return out
