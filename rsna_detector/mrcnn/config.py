"""Mask R-CNN settings: matterport's ``Config`` with validation and serialisation.

Subclass :class:`Config` and override the UPPER_CASE attributes you need, as with
matterport's Mask_RCNN::

    class ShapesConfig(Config):
        NAME = "shapes"
        NUM_CLASSES = 1 + 3
        IMAGE_MIN_DIM = IMAGE_MAX_DIM = 128

    config = ShapesConfig()       # derived values computed, settings validated
    config.display()

Every attribute and default of matterport's ``Config`` is here. Extensions that
matterport does not have:

* ``SEED`` (``None`` or an int): seed for repeatable runs.
* ``MIXED_PRECISION`` (bool): mixed float16 compute on a GPU.
* ``DATA_LOADER_WORKERS`` (int >= 0): worker threads of the training input pipeline.
* ``DATA_LOADER_PROCESSES`` (int >= 0): worker processes instead (0: threads); they scale with the
  cores, threads do not (``mrcnn.input.workers``).
* ``EXTRA_SETTINGS`` (tuple of names): genuine extra UPPER_CASE settings a subclass
  declares. Any other unknown UPPER_CASE name (a typo, or a setting of another
  matterport version such as 2.0's ``IMAGE_PADDING``) gets a :class:`ConfigWarning`
  naming it and the nearest known name; matterport ignored such names silently.
* derived ``RPN_PYRAMID_LEVELS``: the number of pyramid levels that get anchors,
  ``len(RPN_ANCHOR_SCALES)``. matterport pairs one anchor scale with one level
  (P2..P6, ``BACKBONE_STRIDES``). Fewer scales than strides is allowed: the anchors
  and the RPN then use the first ``RPN_PYRAMID_LEVELS`` levels only (the RSNA
  settings give 4 scales, so P6 is unused). More scales than strides is an error.
* validation (:class:`ConfigError`, a ``ValueError``, naming the setting) of the
  values that cannot work (for example an image side the FPN cannot halve 6 times,
  a ``MASK_SHAPE`` the mask head does not produce); values matterport accepts and
  that can work are accepted (flags may be 0/1, ``GRADIENT_CLIP_NORM`` may be 0 for
  no clipping), with a :class:`ConfigWarning` where matterport would silently
  ignore or waste them (unknown ``LOSS_WEIGHTS`` keys, no positive ROI per image);
  :meth:`Config.validate`, :meth:`Config.to_dict` / :meth:`Config.from_dict`,
  :meth:`Config.to_json` / :meth:`Config.from_json`; ``display()`` prints and
  returns None as matterport's, :meth:`Config.display_text` returns the text.
"""
from __future__ import annotations

import difflib
import inspect
import json
import math
import numbers
import re
import warnings
from pathlib import Path

import numpy as np

from ..errors import RsnaDetectorError, RsnaDetectorWarning
from .ops.image_meta import image_meta_size

__all__ = ["Config", "ConfigError", "ConfigWarning", "BACKBONE_NAMES", "RESIZE_MODES", "LOSS_NAMES",
           "MATTERPORT_DIFFERENCE_SWITCHES"]

#: Backbone names the engine builds (``'tiny'`` is a small CPU backbone).
BACKBONE_NAMES = ("resnet50", "resnet101", "tiny")
#: Values of ``IMAGE_RESIZE_MODE`` understood by ``utils.resize_image``.
RESIZE_MODES = ("none", "square", "pad64", "crop")
#: Keys of ``LOSS_WEIGHTS``.
LOSS_NAMES = ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss", "mrcnn_mask_loss")

# Feature maps are halved 6 times from the image down to P6, so the image side
# must be a multiple of 2**6 for the FPN's up- and down-sampling to line up.
_SIZE_MULTIPLE = 2 ** 6

# Settings computed by __init__ from the others (never set them yourself).
_DERIVED = ("BATCH_SIZE", "IMAGE_SHAPE", "IMAGE_META_SIZE", "RPN_PYRAMID_LEVELS")
# Settings whose value may be a callable (serialised as its qualified name).
_CALLABLE_SETTINGS = ("BACKBONE", "COMPUTE_BACKBONE_SHAPE")


class ConfigError(RsnaDetectorError, ValueError):
    """A setting of a :class:`Config` has a value that cannot work."""


class ConfigWarning(RsnaDetectorWarning):
    """A setting of a :class:`Config` is unknown (ignored), or has a value matterport accepts but wastes."""


def _is_setting_name(name: str) -> bool:
    return name[:1].isalpha() and name.isupper()


class Config:
    """Base configuration: subclass it and override the UPPER_CASE settings.

    Derived values set by ``__init__``: ``BATCH_SIZE = IMAGES_PER_GPU * GPU_COUNT``;
    ``IMAGE_SHAPE`` (int ndarray ``[MIN_DIM, MIN_DIM, C]`` in 'crop' mode, else
    ``[MAX_DIM, MAX_DIM, C]``); ``IMAGE_META_SIZE = 12 + NUM_CLASSES``
    (``image_meta.image_meta_size``); ``RPN_PYRAMID_LEVELS = len(RPN_ANCHOR_SCALES)``.

    Raises
    ------
    ConfigError
        From ``__init__`` when a setting has a value that cannot work.

    Warns
    -----
    ConfigWarning
        For an unknown UPPER_CASE setting (with the nearest valid name), which is
        ignored as matterport ignored it.
    """

    # --- matterport's settings and defaults -------------------------------
    NAME = None  # override in subclasses
    GPU_COUNT = 1
    IMAGES_PER_GPU = 2
    STEPS_PER_EPOCH = 1000
    VALIDATION_STEPS = 50
    # 'resnet50', 'resnet101', 'tiny', or a callable with the signature of
    # backbone.build_backbone (then COMPUTE_BACKBONE_SHAPE is required too).
    BACKBONE = "resnet101"
    COMPUTE_BACKBONE_SHAPE = None
    BACKBONE_STRIDES = [4, 8, 16, 32, 64]
    FPN_CLASSIF_FC_LAYERS_SIZE = 1024
    TOP_DOWN_PYRAMID_SIZE = 256
    NUM_CLASSES = 1  # including background; override in subclasses
    RPN_ANCHOR_SCALES = (32, 64, 128, 256, 512)  # side in pixels, one per level
    RPN_ANCHOR_RATIOS = [0.5, 1, 2]  # width / height
    RPN_ANCHOR_STRIDE = 1  # in feature-map cells
    RPN_NMS_THRESHOLD = 0.7
    RPN_TRAIN_ANCHORS_PER_IMAGE = 256
    PRE_NMS_LIMIT = 6000
    POST_NMS_ROIS_TRAINING = 2000
    POST_NMS_ROIS_INFERENCE = 1000
    USE_MINI_MASK = True
    MINI_MASK_SHAPE = (56, 56)  # (height, width)
    IMAGE_RESIZE_MODE = "square"  # one of RESIZE_MODES, see utils.resize_image
    IMAGE_MIN_DIM = 800  # 0 or None: no upscaling (except in 'crop' mode: the crop side)
    IMAGE_MAX_DIM = 1024  # unused in 'crop' mode (may be None there)
    IMAGE_MIN_SCALE = 0  # 0 or None: no minimum
    IMAGE_CHANNEL_COUNT = 3
    MEAN_PIXEL = np.array([123.7, 116.8, 103.9])  # RGB
    TRAIN_ROIS_PER_IMAGE = 200
    ROI_POSITIVE_RATIO = 0.33
    POOL_SIZE = 7
    MASK_POOL_SIZE = 14
    MASK_SHAPE = [28, 28]  # must be 2 x MASK_POOL_SIZE (one deconvolution)
    MAX_GT_INSTANCES = 100
    RPN_BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    DETECTION_MAX_INSTANCES = 100
    DETECTION_MIN_CONFIDENCE = 0.7
    DETECTION_NMS_THRESHOLD = 0.3
    LEARNING_RATE = 0.001
    LEARNING_MOMENTUM = 0.9
    WEIGHT_DECAY = 0.0001
    LOSS_WEIGHTS = {name: 1.0 for name in LOSS_NAMES}
    USE_RPN_ROIS = True
    TRAIN_BN = False  # None: train BN; False: freeze BN (small batches)
    GRADIENT_CLIP_NORM = 5.0

    # --- extensions (not in matterport) -----------------------------------
    SEED = None  # None or an int: seed for repeatable runs
    MIXED_PRECISION = False  # mixed float16 compute (GPU option)
    DATA_LOADER_WORKERS = 2  # worker threads of the training input pipeline
    DATA_LOADER_PROCESSES = 0  # worker processes instead of threads (0: threads)
    EXTRA_SETTINGS = ()  # names of genuine extra settings a subclass declares

    # --- deliberate differences from matterport, as switches ----------------
    # Each default is matterport's behaviour; DetectorConfig turns on what RSNA needs.
    # docs/MATTERPORT.md lists every difference, its reason and its switch.
    TRAIN_ON_EMPTY_IMAGES = False  # matterport skips training images without objects
    ROI_FILL_NEGATIVES = False  # matterport: int(P / ROI_POSITIVE_RATIO) - P negatives, zero padding after
    CLASS_LOSS_SKIPS_PADDING = False  # matterport counts zero-padding ROIs as background in the class loss
    ACTIVE_CLASS_PER_IMAGE = False  # matterport masks the class loss with image 0's active classes
    FREEZE_BN_AFFINE = False  # TRAIN_BN False: matterport fixes the statistics but trains gamma/beta

    def __init__(self):
        """Capture callables unbound, reject unknown names, derive values, validate."""
        for name in _CALLABLE_SETTINGS:
            # A function set as a class attribute would come back as a bound method.
            value = inspect.getattr_static(self, name)
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            setattr(self, name, value)
        self.validate()

    # ------------------------------------------------------------------
    # names
    # ------------------------------------------------------------------
    @classmethod
    def known_settings(cls) -> tuple:
        """Names of every setting this class accepts (base, derived and declared extras)."""
        names = {n for n in vars(Config) if _is_setting_name(n)}
        names.update(_DERIVED)
        for klass in cls.__mro__:
            names.update(vars(klass).get("EXTRA_SETTINGS", ()))
        return tuple(sorted(names))

    def setting_names(self) -> list:
        """Names of the settings of this instance, sorted (what :meth:`to_dict` writes)."""
        names = set(self.known_settings())
        names.update(self._declared_names())
        return sorted(n for n in names if hasattr(self, n))

    def _declared_names(self) -> set:
        """UPPER_CASE names defined on subclasses or set on this instance."""
        names = {n for n in vars(self) if _is_setting_name(n)}
        for klass in type(self).__mro__:
            if klass is object:
                continue
            names.update(n for n in vars(klass) if _is_setting_name(n))
        return names

    def _check_names(self) -> None:
        extras = self.EXTRA_SETTINGS
        if not isinstance(extras, (tuple, list)) or not all(isinstance(n, str) for n in extras):
            _fail("EXTRA_SETTINGS", "a tuple of setting names", extras)
        known = set(self.known_settings()) | set(extras)
        for name in sorted(self._declared_names() - known):
            warnings.warn(f"{type(self).__name__}: {_unknown_message(name, known)} (ignored)", ConfigWarning,
                          stacklevel=4)

    # ------------------------------------------------------------------
    # derived values and validation
    # ------------------------------------------------------------------
    def validate(self) -> "Config":
        """Check every setting and (re)compute the derived values.

        Call it after changing settings on an instance (``__init__`` calls it).

        Returns
        -------
        Config
            ``self``.

        Raises
        ------
        ConfigError
            Naming the first setting whose value cannot work.

        Warns
        -----
        ConfigWarning
            For each unknown UPPER_CASE name (ignored).
        """
        self._check_names()
        _validate_name(self)
        _validate_counts(self)
        _validate_images(self)
        _validate_backbone_and_anchors(self)
        _validate_heads(self)
        _validate_training(self)
        self._set_derived()
        return self

    def _set_derived(self) -> None:
        self.BATCH_SIZE = self.IMAGES_PER_GPU * self.GPU_COUNT
        side = self.IMAGE_MIN_DIM if self.IMAGE_RESIZE_MODE == "crop" else self.IMAGE_MAX_DIM
        self.IMAGE_SHAPE = np.array([side, side, self.IMAGE_CHANNEL_COUNT])
        self.IMAGE_META_SIZE = image_meta_size(self.NUM_CLASSES)
        self.RPN_PYRAMID_LEVELS = len(self.RPN_ANCHOR_SCALES)

    # ------------------------------------------------------------------
    # display and serialisation
    # ------------------------------------------------------------------
    def display_text(self) -> str:
        """The text :meth:`display` prints, matterport's: every attribute in ``dir()`` order that is
        neither a dunder nor callable (lower-case and ``_private`` ones of a subclass included), one per line."""
        lines = ["", "Configurations:"]
        for name in dir(self):
            value = getattr(self, name)
            if not name.startswith("__") and not callable(value):
                lines.append("{:30} {}".format(name, value))
        lines.append("")
        return "\n".join(lines) + "\n"

    def display(self) -> None:
        """Print every setting, one per line; returns None as matterport's (see :meth:`display_text`)."""
        print(self.display_text())

    def to_dict(self) -> dict:
        """Every setting as JSON-serialisable values.

        Tuples and numpy arrays become lists, numpy scalars Python numbers, and
        callables their qualified name ``'module.QualName'``. Derived values are
        included (``from_dict`` recomputes them).
        """
        return {name: _to_jsonable(getattr(self, name)) for name in self.setting_names()}

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        """Build an instance of ``cls`` holding ``values`` (as instance attributes).

        ``cls.__init__`` is not run (only ``Config.__init__``: derivation and
        validation), since ``values`` already hold the final settings.

        Parameters
        ----------
        values : dict
            Settings as produced by :meth:`to_dict`. Derived values are ignored
            (recomputed); lists are turned back into the type of ``cls``'s default
            (tuple or numpy array). Nothing is ever imported: BACKBONE must be a
            built-in name (``BACKBONE_NAMES``) and COMPUTE_BACKBONE_SHAPE null, or,
            from Python, the callable objects themselves; a name such as
            ``'module.QualName'`` (what :meth:`to_dict` writes for a callable) is refused.

        Raises
        ------
        ConfigError
            For a key that is not a setting of ``cls`` (naming it) or an invalid value.
        """
        if not isinstance(values, dict):
            raise ConfigError(f"from_dict: expected a dict of settings, got {type(values).__name__}")
        extras = tuple(values.get("EXTRA_SETTINGS", ()))
        known = set(cls.known_settings()) | set(extras)
        attrs = {"EXTRA_SETTINGS": extras} if extras else {}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(_unknown_message(str(key), known))
            if key in _DERIVED or key == "EXTRA_SETTINGS":
                continue
            attrs[key] = _from_jsonable(key, value, getattr(cls, key, None))
        # Values go on the instance (not on a generated subclass) so that the
        # result pickles like any instance of ``cls`` (worker processes).
        config = cls.__new__(cls)
        for key, value in attrs.items():
            setattr(config, key, value)
        Config.__init__(config)
        return config

    def to_json(self, path) -> Path:
        """Write :meth:`to_dict` to ``path`` as indented JSON, atomically; returns the path."""
        from .._io import atomic_write

        return atomic_write(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_json(cls, path) -> "Config":
        """Read a file written by :meth:`to_json` (see :meth:`from_dict`)."""
        path = Path(path)
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from exc
        except UnicodeDecodeError as exc:
            line = path.read_bytes()[:exc.start].count(b"\n") + 1
            raise ConfigError(f"{path}: line {line}: not UTF-8 text: byte 0x{exc.object[exc.start]:02x} at byte "
                              f"{exc.start} (save the file as UTF-8)") from exc
        except (RecursionError, ValueError) as exc:  # nesting too deep; an integer of over 4300 digits
            raise ConfigError(f"{path}: not a config file ({type(exc).__name__}: {str(exc)[:200]})") from exc
        try:
            return cls.from_dict(values)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc

    def __repr__(self):
        return f"<{type(self).__name__} NAME={self.NAME!r}>"


# ----------------------------------------------------------------------------
# validation helpers: each raises ConfigError naming the setting
# ----------------------------------------------------------------------------

def _unknown_message(name: str, known) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else (
        "; declare genuine extra settings in EXTRA_SETTINGS")
    return f"{name}: unknown setting{hint}"


def _fail(name: str, expected: str, value) -> None:
    raise ConfigError(f"{name}: expected {expected}, got {value!r}")


def _require_int(config, name, minimum, optional=False, where=""):
    """``optional``: None is accepted too; ``where`` ends the message (e.g. " in 'crop' mode")."""
    value = getattr(config, name)
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        _fail(name, f"{'None or ' if optional else ''}an integer >= {minimum}{where}", value)


def _require_number(config, name, low=None, high=None, low_open=False, optional=False):
    value = getattr(config, name)
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        _fail(name, "None or a number" if optional else "a number", value)
    too_low = low is not None and (value < low or (low_open and value == low))
    too_high = high is not None and value > high
    if too_low or too_high:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low}")
        if high is not None:
            bounds.append(f"<= {high}")
        _fail(name, ("None or " if optional else "") + "a number " + " and ".join(bounds), value)


def _require_sequence(config, name, length=None, positive=True):
    value = getattr(config, name)
    try:
        items = [float(v) for v in np.asarray(value).reshape(-1)]
    except (TypeError, ValueError):
        _fail(name, "a sequence of numbers", value)
    if np.ndim(value) != 1 or not items or (length is not None and len(items) != length):
        _fail(name, f"a flat sequence of {length or 'one or more'} numbers", value)
    if positive and min(items) <= 0:
        _fail(name, "positive numbers", value)
    return items


_NAME = re.compile(r"[\w.-]+")


def _validate_name(config):
    """NAME is part of run-folder and checkpoint file names: letters, digits, '_', '-', '.'; no '..' (None allowed)."""
    name = config.NAME
    if name is None:
        return
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name or name.startswith("."):
        _fail("NAME", "a name made of letters, digits, '_', '-' and '.' (it becomes part of file names: no path "
                      "separator, no '..', no leading '.')", name)


def _validate_counts(config):
    for name in ("GPU_COUNT", "IMAGES_PER_GPU", "STEPS_PER_EPOCH", "NUM_CLASSES",
                 "RPN_TRAIN_ANCHORS_PER_IMAGE", "PRE_NMS_LIMIT", "POST_NMS_ROIS_TRAINING",
                 "POST_NMS_ROIS_INFERENCE", "TRAIN_ROIS_PER_IMAGE", "MAX_GT_INSTANCES",
                 "DETECTION_MAX_INSTANCES", "POOL_SIZE", "MASK_POOL_SIZE",
                 "TOP_DOWN_PYRAMID_SIZE", "FPN_CLASSIF_FC_LAYERS_SIZE", "RPN_ANCHOR_STRIDE",
                 "IMAGE_CHANNEL_COUNT"):
        _require_int(config, name, 1)
    _require_int(config, "VALIDATION_STEPS", 0)
    _require_int(config, "DATA_LOADER_WORKERS", 0)
    _require_int(config, "DATA_LOADER_PROCESSES", 0)
    if config.SEED is not None:
        _require_int(config, "SEED", 0)


def _validate_images(config):
    mode = config.IMAGE_RESIZE_MODE
    if mode not in RESIZE_MODES:
        _fail("IMAGE_RESIZE_MODE", f"one of {RESIZE_MODES}", mode)
    # As in matterport, 0 or None turns off what the mode does not need: upscaling by IMAGE_MIN_DIM
    # or IMAGE_MIN_SCALE, and IMAGE_MAX_DIM in 'crop' mode (unused). Needed: IMAGE_SHAPE's side
    # (IMAGE_MIN_DIM in 'crop' mode, else IMAGE_MAX_DIM), a multiple of 64 where images are
    # padded ('square') or cropped ('crop') to it; in 'pad64' a set IMAGE_MIN_DIM too (matterport asserts it).
    side, other = ("IMAGE_MIN_DIM", "IMAGE_MAX_DIM") if mode == "crop" else ("IMAGE_MAX_DIM", "IMAGE_MIN_DIM")
    _require_int(config, side, 1, where=f" in '{mode}' mode (the side of IMAGE_SHAPE)")
    _require_int(config, other, 0, optional=True, where=f" in '{mode}' mode")
    _require_number(config, "IMAGE_MIN_SCALE", low=0, optional=True)
    if mode == "square" and config.IMAGE_MAX_DIM % _SIZE_MULTIPLE:
        _fail("IMAGE_MAX_DIM", f"a multiple of {_SIZE_MULTIPLE} in '{mode}' mode "
              "(the FPN halves the image 6 times)", config.IMAGE_MAX_DIM)
    if mode in ("crop", "pad64") and (config.IMAGE_MIN_DIM or 0) % _SIZE_MULTIPLE:
        _fail("IMAGE_MIN_DIM", f"a multiple of {_SIZE_MULTIPLE} in '{mode}' mode "
              "(the FPN halves the image 6 times)", config.IMAGE_MIN_DIM)
    _require_sequence(config, "MEAN_PIXEL", length=config.IMAGE_CHANNEL_COUNT, positive=False)


def _validate_backbone_and_anchors(config):
    backbone = config.BACKBONE
    if callable(backbone):
        if not callable(config.COMPUTE_BACKBONE_SHAPE):
            _fail("COMPUTE_BACKBONE_SHAPE", "a callable(image_shape) -> feature shapes when "
                  "BACKBONE is a callable", config.COMPUTE_BACKBONE_SHAPE)
    elif backbone not in BACKBONE_NAMES:
        _fail("BACKBONE", f"one of {BACKBONE_NAMES} or a callable", backbone)
    strides = _require_sequence(config, "BACKBONE_STRIDES")
    scales = _require_sequence(config, "RPN_ANCHOR_SCALES")
    _require_sequence(config, "RPN_ANCHOR_RATIOS")
    if len(scales) > len(strides):
        raise ConfigError(
            f"RPN_ANCHOR_SCALES: {len(scales)} scales for {len(strides)} pyramid levels "
            f"(BACKBONE_STRIDES {list(config.BACKBONE_STRIDES)}); expected at most one scale per level"
        )
    for name in ("RPN_NMS_THRESHOLD", "DETECTION_NMS_THRESHOLD", "DETECTION_MIN_CONFIDENCE"):
        _require_number(config, name, low=0, high=1)
    _require_sequence(config, "RPN_BBOX_STD_DEV", length=4)
    _require_sequence(config, "BBOX_STD_DEV", length=4)


def _validate_heads(config):
    mask_shape = _require_sequence(config, "MASK_SHAPE", length=2)
    expected = [2 * config.MASK_POOL_SIZE] * 2
    if mask_shape != expected:
        _fail("MASK_SHAPE", f"{expected} (2 x MASK_POOL_SIZE: the mask head upsamples once)",
              config.MASK_SHAPE)
    mini = _require_sequence(config, "MINI_MASK_SHAPE", length=2)
    if any(v != int(v) for v in mini):
        _fail("MINI_MASK_SHAPE", "two integers (height, width)", config.MINI_MASK_SHAPE)
    _require_number(config, "ROI_POSITIVE_RATIO", low=0, high=1, low_open=True)
    if config.TRAIN_ROIS_PER_IMAGE * config.ROI_POSITIVE_RATIO < 1:
        # matterport accepts it: the heads then train on no ROI at all (only the RPN learns).
        warnings.warn(f"ROI_POSITIVE_RATIO: TRAIN_ROIS_PER_IMAGE * ROI_POSITIVE_RATIO = "
                      f"{config.TRAIN_ROIS_PER_IMAGE} * {config.ROI_POSITIVE_RATIO} < 1: no positive ROI is "
                      "kept per image, so the classifier and mask heads get no positive example",
                      ConfigWarning, stacklevel=4)


#: The switches that turn on deliberate differences from matterport (all bool, default False).
MATTERPORT_DIFFERENCE_SWITCHES = ("TRAIN_ON_EMPTY_IMAGES", "ROI_FILL_NEGATIVES", "CLASS_LOSS_SKIPS_PADDING",
                                  "ACTIVE_CLASS_PER_IMAGE", "FREEZE_BN_AFFINE")


def _require_flag(config, name, allow_none=False):
    """Accept True/False (and 0/1, which matterport's truth tests accept), stored back as bool."""
    value = getattr(config, name)
    if value is None and allow_none:
        return
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, numbers.Integral) and value in (0, 1)):
        setattr(config, name, bool(value))
        return
    _fail(name, "None, True or False" if allow_none else "True or False", value)


def _validate_training(config):
    for name in MATTERPORT_DIFFERENCE_SWITCHES + ("USE_MINI_MASK", "USE_RPN_ROIS", "MIXED_PRECISION"):
        _require_flag(config, name)
    _require_flag(config, "TRAIN_BN", allow_none=True)
    _require_number(config, "LEARNING_RATE", low=0, low_open=True)
    _require_number(config, "LEARNING_MOMENTUM", low=0, high=1)
    _require_number(config, "WEIGHT_DECAY", low=0)
    if config.GRADIENT_CLIP_NORM is not None:
        _require_number(config, "GRADIENT_CLIP_NORM", low=0)  # 0: no clipping, as in Keras
    weights = config.LOSS_WEIGHTS
    if not isinstance(weights, dict):
        _fail("LOSS_WEIGHTS", f"a dict with keys among {LOSS_NAMES}", weights)
    for key, value in weights.items():
        if key not in LOSS_NAMES:
            close = difflib.get_close_matches(str(key), LOSS_NAMES, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; the losses are {LOSS_NAMES}"
            warnings.warn(f"LOSS_WEIGHTS: unknown loss {key!r} (ignored, as matterport did){hint}",
                          ConfigWarning, stacklevel=4)
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
            _fail(f"LOSS_WEIGHTS[{key!r}]", "a number >= 0", value)


# ----------------------------------------------------------------------------
# JSON conversion
# ----------------------------------------------------------------------------

def _to_jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if callable(value):
        return f"{value.__module__}.{value.__qualname__}"
    return value


def _from_jsonable(key, value, default):
    if key in _CALLABLE_SETTINGS:
        return _callable_setting(key, value)
    if isinstance(value, list):
        if isinstance(default, np.ndarray):
            return np.array(value)
        if isinstance(default, tuple) or key == "EXTRA_SETTINGS":
            return tuple(value)
    return value


def _callable_setting(key, value):
    """A BACKBONE / COMPUTE_BACKBONE_SHAPE value of from_dict: never imported from a name.

    Loading settings must not run code, so a name such as ``'package.module.build'``
    (what ``to_dict`` writes for a callable) is refused; a callable object itself
    (a Python caller's dict) is kept.
    """
    if value is None or callable(value) or (key == "BACKBONE" and value in BACKBONE_NAMES):
        return value
    raise ConfigError(
        f"{key}: {value!r} is not accepted from a settings dict or file: it accepts only the built-in "
        f"backbone names {BACKBONE_NAMES} (and null for COMPUTE_BACKBONE_SHAPE) and imports nothing; "
        f"a callable {key} is for Python callers: set it on the config object (config.{key} = function)")
