"""Chest-like images for the synthetic data set: anatomy, opacities and their boxes.

:func:`sample_chest_geometry` draws a chest (lung fields, mediastinum, heart, ribs, clavicles);
:func:`sample_opacity_boxes` draws opacity boxes inside the lungs, ``(y1, x1, y2, x2)`` pixels,
``y2``/``x2`` exclusive; :func:`synthetic_chest_image` renders uint8 ``[size, size]``: soft-edged
anatomy, every opacity a soft bright region whose bounding box is exactly its box, noise at full
size. Sizes are given for a 1024-pixel image and scaled to ``size``. Everything comes from the
``numpy.random.Generator`` passed in.

Two presets (:data:`PRESETS`) set how hard the images are. ``'easy'`` (the default, the demo's):
bright opacities with a soft edge inside the drawn lungs, fixed exposure and noise; a small
detector learns it in minutes. ``'realistic'``: boxes drawn from the real label distribution
(``box_distribution``; they overlap the heart and the ribs as real ones do), fainter and patchier
opacities over busier lung markings (about three quarters of the easy preset's contrast over the
background's spread), exposure, contrast and noise varying from image to image. The CPU preset of
the detector still learns it in 12 short epochs, far from saturated (``make bench-models``).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidArgumentError
from .labels import RSNA_IMAGE_SIZE

__all__ = ["ChestGeometry", "SyntheticPreset", "PRESETS", "get_preset", "sample_chest_geometry", "sample_opacity_boxes",
           "synthetic_chest_image"]

_RENDER_SIDE = 256  # anatomy is smooth: drawn at <= 256 px, then upsampled, noise added at full size
_REFERENCE_SIDE = RSNA_IMAGE_SIZE  # sizes below are given in pixels of a 1024 image and scaled


# ---------------------------------------------------------------- presets
@dataclass(frozen=True)
class SyntheticPreset:
    """How hard a synthetic data set is (intensities on the 0..1 scale of the rendered image).

    Attributes
    ----------
    name : str
    boxes : {'lungs', 'real'}
        Boxes inside the drawn lung fields (:func:`sample_opacity_boxes`) or drawn
        from the real label distribution (``box_distribution.sample_real_boxes``).
    opacity_amplitude : (float, float)
        Range of an opacity's peak brightness.
    opacity_edge : float
        Share of the inscribed ellipse over which an opacity fades to nothing
        (1: a diffuse opacity brightest at its centre only).
    opacity_texture : (float, float)
        ``(base, weight)``: an opacity is modulated by ``base + weight * patchiness``
        (low-frequency noise in [-1, 1]), clipped at 0: patchy when the weight is large.
    lung_markings : float
        Weight of the fine low-frequency texture of the lung fields (vessels).
    gamma : (float, float)
        Range of the exposure gamma.
    exposure : (float, float) or None
        Range of a brightness shift, with ``contrast`` and ``noise`` drawn per image; None: fixed.
    contrast : (float, float)
        Range of a contrast factor (with ``exposure``).
    noise : (float, float)
        Range of the standard deviation of the full-size pixel noise (a fixed 0.012 without ``exposure``).
    """

    name: str
    boxes: str
    opacity_amplitude: tuple
    opacity_edge: float
    opacity_texture: tuple
    lung_markings: float
    gamma: tuple
    exposure: tuple | None = None
    contrast: tuple = (1.0, 1.0)
    noise: tuple = (0.012, 0.012)


#: The presets by name; 'easy' is the default (the demo's).
PRESETS = {
    "easy": SyntheticPreset(name="easy", boxes="lungs", opacity_amplitude=(0.34, 0.46), opacity_edge=0.7,
                            opacity_texture=(0.8, 0.2), lung_markings=0.025, gamma=(0.85, 1.15)),
    "realistic": SyntheticPreset(name="realistic", boxes="real", opacity_amplitude=(0.28, 0.40), opacity_edge=0.75,
                                 opacity_texture=(0.75, 0.3), lung_markings=0.04, gamma=(0.75, 1.3),
                                 exposure=(-0.08, 0.08), contrast=(0.75, 1.1), noise=(0.015, 0.035)),
}


def get_preset(preset):
    """A :class:`SyntheticPreset` from itself or its name; ValueError naming the known ones."""
    if isinstance(preset, SyntheticPreset):
        return preset
    if preset not in PRESETS:
        raise InvalidArgumentError(f"preset {preset!r}: expected one of {', '.join(PRESETS)}")
    return PRESETS[preset]


# ---------------------------------------------------------------- geometry and boxes
@dataclass(frozen=True)
class ChestGeometry:
    """Where the anatomy of one synthetic image lies, in pixels of the ``size`` image.

    Attributes
    ----------
    size : int
        Image side.
    lungs : tuple of two (cx, cy, half_width, half_height)
        Image-left and image-right lung fields, superellipses of exponent
        ``LUNG_EXPONENT``.
    heart : (cx, cy, half_width, half_height)
        The heart shadow (an ellipse).
    spine_x : float
        Column of the spine.
    """

    size: int
    lungs: tuple
    heart: tuple
    spine_x: float

    LUNG_EXPONENT = 2.5

    def lung_level(self, lung, x, y):
        """Superellipse level of points: < 1 inside ``lungs[lung]``."""
        cx, cy, half_w, half_h = self.lungs[lung]
        p = self.LUNG_EXPONENT
        return np.abs((np.asarray(x) - cx) / half_w) ** p + np.abs((np.asarray(y) - cy) / half_h) ** p


def sample_chest_geometry(rng, size):
    """Random anatomy of one image (lungs, heart, spine) for an image of side ``size``.

    Parameters
    ----------
    rng : numpy.random.Generator
    size : int

    Returns
    -------
    ChestGeometry
    """
    s = size / _REFERENCE_SIDE
    spine = (512 + rng.normal(0, 8)) * s
    centre_y = (525 + rng.normal(0, 15)) * s
    half_h = (365 + rng.normal(0, 18)) * s
    lungs = []
    for side in (-1, 1):
        half_w = (175 + rng.normal(0, 8)) * s
        cx = spine + side * (205 + rng.normal(0, 8)) * s
        lungs.append((cx, centre_y + rng.normal(0, 6) * s, half_w, half_h * (1 + rng.normal(0, 0.03))))
    heart = (spine + 55 * s, centre_y + 150 * s, (165 + rng.normal(0, 10)) * s, (135 + rng.normal(0, 8)) * s)
    return ChestGeometry(size=int(size), lungs=tuple(lungs), heart=heart, spine_x=spine)


def _inscribed_ellipse_inside(geometry, lung, box, band):
    """True when the ellipse inscribed in ``box`` (x, y, w, h) lies in the lung (and its vertical band)."""
    x, y, w, h = box
    if band is not None and not (band[0] <= y and y + h <= band[1]):
        return False
    hx, hy, hw, hh = geometry.heart
    if ((x + w / 2 - hx) / hw) ** 2 + ((y + h / 2 - hy) / hh) ** 2 < 1:  # centred on the heart shadow
        return False
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    px = x + w / 2 + w / 2 * np.cos(angles)
    py = y + h / 2 + h / 2 * np.sin(angles)
    return bool((geometry.lung_level(lung, px, py) < 0.92).all())


def _sample_box(rng, geometry, lung, band=None):
    """One integer box (x, y, w, h) inside a lung (within ``band`` = (top, bottom) when given)."""
    s = geometry.size / _REFERENCE_SIDE
    cx, cy, half_w, half_h = geometry.lungs[lung]
    width = np.clip(rng.normal(218, 55), 100, 400) * s
    height = np.clip(rng.normal(320, 140), 100, 600) * s
    for attempt in range(400):
        if attempt and attempt % 40 == 0:  # does not fit: shrink
            width, height = max(width * 0.9, 40 * s), max(height * 0.9, 40 * s)
        left_range = (cx - half_w, cx + half_w - width)
        top_range = (cy - half_h, cy + half_h - height) if band is None else (band[0], band[1] - height)
        if left_range[1] < left_range[0] or top_range[1] < top_range[0]:
            continue
        box = (rng.uniform(*left_range), rng.uniform(*top_range), width, height)
        box = tuple(float(v) for v in np.round(box))
        if _inscribed_ellipse_inside(geometry, lung, box, band):
            return box
    raise RuntimeError(f"could not place a box in lung {lung} of {geometry}")  # not reached for sane geometry


def sample_opacity_boxes(rng, geometry, n_boxes):
    """``n_boxes`` (0-4) non-overlapping opacity boxes inside the lung fields.

    One box: a random lung; two: one per lung; three or four: a lung holds an
    upper and a lower box (non-overlapping), the other one or two.

    Parameters
    ----------
    rng : numpy.random.Generator
    geometry : ChestGeometry
    n_boxes : int

    Returns
    -------
    numpy.ndarray
        float64 [n_boxes, 4] RSNA ``(x, y, width, height)``, integer-valued,
        pixels of the ``geometry.size`` image.
    """
    if not 0 <= n_boxes <= 4:
        raise InvalidArgumentError(f"n_boxes must be between 0 and 4, got {n_boxes}")
    first = int(rng.integers(2))
    per_lung = {0: [], 1: [(first, 1)], 2: [(0, 1), (1, 1)], 3: [(first, 2), (1 - first, 1)],
                4: [(0, 2), (1, 2)]}[n_boxes]
    boxes = []
    gap = 8 * geometry.size / _REFERENCE_SIDE
    for lung, count in per_lung:
        if count == 1:
            boxes.append(_sample_box(rng, geometry, lung))
            continue
        _, cy, _, half_h = geometry.lungs[lung]
        boxes.append(_sample_box(rng, geometry, lung, band=(cy - half_h, cy - gap / 2)))
        boxes.append(_sample_box(rng, geometry, lung, band=(cy + gap / 2, cy + half_h)))
    return np.array(boxes, np.float64).reshape(-1, 4)


# ---------------------------------------------------------------- rendering
def _smoothstep(t):
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _soft_inside(level, softness):
    """1 well inside (level < 1 - softness), 0 outside (level > 1), smooth between."""
    return _smoothstep((1 - level) / softness)


def _smooth_noise(rng, shape, cells):
    """Low-frequency noise in [-1, 1] ([H, W] float32): a coarse grid upsampled bicubically."""
    from PIL import Image

    coarse = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, mode="F").resize(shape[::-1], Image.Resampling.BICUBIC))


def _rib_layer(geometry, X, Y, s):
    """Soft curved bands (posterior ribs) over both hemithoraces, 0..1."""
    ribs = np.zeros_like(X)
    dx = X - geometry.spine_x
    lateral = np.abs(dx)
    thickness = 15 * s
    for k in range(10):
        centre = (150 + 68 * k) * s - 0.12 * lateral + 0.75 * lateral ** 2 / (_REFERENCE_SIDE * s)
        ribs = np.maximum(ribs, np.exp(-((Y - centre) / thickness) ** 2))
    return ribs * _soft_inside((lateral / (440 * s)) ** 2, 0.3)


def _clavicle_layer(geometry, X, Y, s):
    dx = np.abs(X - geometry.spine_x)
    centre = 185 * s - 0.18 * dx
    band = np.exp(-((Y - centre) / (14 * s)) ** 2)
    return band * _soft_inside((dx / (330 * s)) ** 2, 0.4) * (dx > 35 * s)


def _opacity_layer(boxes, X, Y, rng, texture, preset):
    """Sum of soft blobs, each exactly filling the ellipse inscribed in its box, 0..0.6."""
    layer = np.zeros_like(X)
    base, weight = preset.opacity_texture
    modulation = np.maximum(base + weight * texture, 0)
    for x, y, w, h in np.asarray(boxes, np.float64).reshape(-1, 4):
        level = ((X - (x + w / 2)) / (w / 2)) ** 2 + ((Y - (y + h / 2)) / (h / 2)) ** 2
        amplitude = rng.uniform(*preset.opacity_amplitude)
        layer += amplitude * _soft_inside(level, preset.opacity_edge) * modulation
    return np.clip(layer, 0, 0.6)


def synthetic_chest_image(rng, boxes, size, *, geometry=None, view_position="PA", abnormal=False, preset="easy"):
    """A chest-X-ray-like uint8 image with a soft bright opacity filling each box.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of all randomness (same state -> same image).
    boxes : array-like [N, 4]
        RSNA ``(x, y, width, height)`` in pixels of this image; each opacity's
        extent is exactly its box (the blob fills the inscribed ellipse with a
        soft edge). Boxes should lie inside the lung fields of ``geometry``
        (:func:`sample_opacity_boxes`).
    size : int
        Image side.
    geometry : ChestGeometry, optional
        Anatomy; drawn from ``rng`` when None.
    view_position : {'PA', 'AP'}
        AP images have a larger heart shadow and less contrast, as in real AP films.
    abnormal : bool
        Add a non-opacity finding (enlarged heart or a line/tube), as in the
        'No Lung Opacity / Not Normal' class.
    preset : str or SyntheticPreset
        'easy' (default) or 'realistic' (:data:`PRESETS`): how faint the
        opacities are and how much exposure and noise vary.

    Returns
    -------
    numpy.ndarray
        uint8 [size, size], bone and soft tissue bright, lungs dark.
    """
    from PIL import Image

    preset = get_preset(preset)
    geometry = geometry or sample_chest_geometry(rng, size)
    side = min(int(size), _RENDER_SIDE)
    s = size / _REFERENCE_SIDE
    coords = (np.arange(side, dtype=np.float32) + 0.5) * (size / side)
    X, Y = np.meshgrid(coords, coords)
    texture = _smooth_noise(rng, (side, side), 12)
    markings = _smooth_noise(rng, (side, side), 48)
    patchiness = _smooth_noise(rng, (side, side), 24)

    body = _soft_inside(((X - geometry.spine_x) / (470 * s)) ** 4 + ((Y - 650 * s) / (720 * s)) ** 4, 0.25)
    image = 0.05 + 0.40 * body
    image += 0.20 * _soft_inside(((X - geometry.spine_x) / (85 * s)) ** 2 + ((Y - 400 * s) / (420 * s)) ** 6, 0.5)
    for lung in (0, 1):
        _, cy, _, half_h = geometry.lungs[lung]
        inside = _soft_inside(geometry.lung_level(lung, X, Y), 0.18)
        lung_value = 0.15 + 0.10 * np.clip((Y - (cy - half_h)) / (2 * half_h), 0, 1) + 0.03 * texture \
            + preset.lung_markings * markings
        image = image * (1 - inside) + lung_value * inside
    cx, cy, half_w, half_h = geometry.heart
    enlarged = abnormal and rng.random() < 0.5
    scale = (1.12 if view_position == "AP" else 1.0) * (1.3 if enlarged else 1.0)
    heart = _soft_inside(((X - cx) / (half_w * scale)) ** 2 + ((Y - cy) / (half_h * scale)) ** 2, 0.3)
    image = image * (1 - 0.85 * heart) + 0.58 * 0.85 * heart
    spine = _soft_inside(((X - geometry.spine_x) / (38 * s)) ** 2, 0.5)
    image += spine * (0.06 + 0.03 * np.cos(2 * np.pi * Y / (62 * s)))
    image += 0.11 * _rib_layer(geometry, X, Y, s) + 0.15 * _clavicle_layer(geometry, X, Y, s)
    if abnormal and not enlarged:
        image += 0.35 * _line_layer(rng, geometry, X, Y, s)
    gamma = rng.uniform(*preset.gamma)
    offset = int(rng.integers(0, size * size + 1))
    noise = _noise_bank(size)[offset: offset + size * size].reshape(size, size)
    shift, contrast, noise_level = _exposure(rng, preset)
    # drawn last, so that the same rng state gives the same image apart from the opacities
    opacity = _opacity_layer(boxes, X, Y, rng, patchiness, preset)
    image = image + opacity * (1 - 0.6 * image)  # brighter, never saturating over bone
    image = np.clip(image, 0, 1) ** gamma
    contrast *= 0.85 if view_position == "AP" else 1.0
    image = (0.5 + shift + contrast * (image - 0.5)).astype(np.float32)
    if side != size:
        image = np.asarray(Image.fromarray(image, mode="F").resize((size, size), Image.Resampling.BILINEAR))
    image = image + np.float32(noise_level) * noise
    image *= 255
    image += 0.5
    return np.clip(image, 0, 255, out=image).astype(np.uint8)


def _exposure(rng, preset):
    """(brightness shift, contrast factor, noise level) of one image; fixed (0, 1, noise[0]) without ``exposure``."""
    if preset.exposure is None:
        return 0.0, 1.0, preset.noise[0]
    return rng.uniform(*preset.exposure), rng.uniform(*preset.contrast), rng.uniform(*preset.noise)


@functools.lru_cache(maxsize=4)
def _noise_bank(size):
    """A fixed table of ``2 * size**2`` standard-normal float32 values.

    Each image takes a window of it at a random offset: drawing fresh
    Gaussian noise for a 1024 image costs more than all the rest of the drawing.
    """
    bank = np.random.default_rng(20180827).standard_normal(2 * size * size, dtype=np.float32)
    bank.flags.writeable = False
    return bank


def _line_layer(rng, geometry, X, Y, s):
    """A thin bright tube descending from the neck (soft), 0..1."""
    x0 = geometry.spine_x + rng.uniform(-30, 30) * s
    bend = rng.uniform(-80, 80) * s
    bottom = rng.uniform(550, 750) * s
    t = np.clip(Y / bottom, 0, 1)
    centre = x0 + bend * t ** 2
    return np.exp(-((X - centre) / (5 * s)) ** 2) * (Y < bottom)
