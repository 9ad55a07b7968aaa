"""The :class:`Dataset` base class of the engine (matterport's ``utils.Dataset`` API) and its errors.

Reachable as ``rsna_detector.mrcnn.utils.Dataset`` too, as in matterport.
"""
from __future__ import annotations

import logging

import numpy as np

from ...errors import RsnaDetectorError

__all__ = ["Dataset", "DatasetError", "DatasetKeyError", "DatasetAssertionError"]

logger = logging.getLogger(__name__)


class DatasetError(RsnaDetectorError, ValueError):
    """A :class:`Dataset` was used with a wrong name, id or file."""


class DatasetKeyError(DatasetError, KeyError):
    """An unknown ``'source.id'`` key (also a ``KeyError``, which matterport raised)."""

    __str__ = Exception.__str__  # KeyError would quote the message


class DatasetAssertionError(DatasetError, AssertionError):
    """A broken :class:`Dataset` precondition (also an ``AssertionError``, which matterport raised)."""


class Dataset:
    """Base class of data sets (matterport's API).

    Subclass it, register classes with :meth:`add_class` and images with
    :meth:`add_image`, override :meth:`load_mask` (and :meth:`load_image` if the
    files are not ordinary pictures), then call :meth:`prepare` before use::

        class Shapes(Dataset):
            def load_mask(self, image_id): ...

        ds = Shapes()
        ds.add_class("shapes", 1, "square")
        ds.add_image("shapes", image_id=0, path="a.png")
        ds.prepare()

    Class 0 is always the background ``'BG'``. Internal image and class ids are
    ``0..n-1``; each source keeps its own ids (``'source.id'`` in the maps).
    """

    def __init__(self, class_map=None):
        self._image_ids = []
        self.image_info = []
        self.class_info = [{"source": "", "id": 0, "name": "BG"}]
        self.source_class_ids = {}
        self._empty_mask_logged = False

    def add_class(self, source, class_id, class_name):
        """Register class ``class_id`` of ``source`` (no-op if already registered)."""
        if "." in source:
            raise DatasetAssertionError(f"add_class: source {source!r} must not contain a dot")
        for info in self.class_info:
            if info["source"] == source and info["id"] == class_id:
                return
        self.class_info.append({"source": source, "id": class_id, "name": class_name})

    def add_image(self, source, image_id, path, **kwargs):
        """Register an image; extra keyword arguments are kept in its ``image_info`` dict."""
        info = {"id": image_id, "source": source, "path": path}
        info.update(kwargs)
        self.image_info.append(info)

    def image_reference(self, image_id):
        """A string naming the image for debugging (override: a URL, a file name)."""
        return ""

    def prepare(self, class_map=None):
        """Build the internal id tables; call it after adding classes and images.

        ``class_map`` is accepted for matterport compatibility and ignored (as
        matterport ignores it). ``sources`` is sorted (matterport's order was
        that of a ``set``).
        """
        self.num_classes = len(self.class_info)
        self.class_ids = np.arange(self.num_classes)
        self.class_names = [_clean_name(c["name"]) for c in self.class_info]
        self.num_images = len(self.image_info)
        self._image_ids = np.arange(self.num_images)
        self.class_from_source_map = {
            f"{info['source']}.{info['id']}": cid for cid, info in zip(self.class_ids, self.class_info, strict=True)
        }
        self.image_from_source_map = {
            f"{info['source']}.{info['id']}": iid for iid, info in zip(self._image_ids, self.image_info, strict=True)
        }
        self.sources = sorted({c["source"] for c in self.class_info})
        self.source_class_ids = {
            source: [cid for cid, info in enumerate(self.class_info)
                     if cid == 0 or info["source"] == source]
            for source in self.sources
        }

    def append_data(self, class_info, image_info):
        """matterport's legacy id tables of external data sets (arguments unused, as in matterport).

        Builds ``external_to_class_id`` (``'<ds><id>'`` -> internal class id, from
        the ``(ds, id)`` pairs in each class info's ``'map'`` list) and
        ``external_to_image_id`` (``'<ds><id>'`` -> internal image id, from each
        image info's ``'ds'`` and ``'id'``).

        Extension: class and image infos without ``'map'`` / ``'ds'`` (the
        background class always) are skipped; matterport raised ``KeyError``.
        """
        del class_info, image_info
        self.external_to_class_id = {
            f"{ds}{source_id}": class_id
            for class_id, info in enumerate(self.class_info) for ds, source_id in info.get("map", ())
        }
        self.external_to_image_id = {
            f"{info['ds']}{info['id']}": image_id
            for image_id, info in enumerate(self.image_info) if "ds" in info
        }

    @property
    def image_ids(self):
        """Internal image ids, ``np.arange(num_images)`` (after :meth:`prepare`)."""
        return self._image_ids

    def map_source_class_id(self, source_class_id):
        """Internal class id of ``'source.class_id'`` (e.g. ``'coco.12'``).

        Raises
        ------
        DatasetKeyError
            (a ``KeyError``) for an unknown key.
        """
        try:
            return self.class_from_source_map[source_class_id]
        except AttributeError as error:
            raise DatasetError("map_source_class_id: call prepare() first") from error
        except KeyError as error:
            raise DatasetKeyError(f"map_source_class_id: no class {source_class_id!r}") from error

    def get_source_class_id(self, class_id, source):
        """The id that ``source`` gives to internal class ``class_id``.

        Raises
        ------
        DatasetAssertionError
            (an ``AssertionError``) when the class belongs to another source.
        """
        info = self.class_info[class_id]
        if info["source"] != source:
            raise DatasetAssertionError(
                f"get_source_class_id: class {class_id} belongs to source {info['source']!r}, not {source!r}"
            )
        return info["id"]

    def source_image_link(self, image_id):
        """Path or URL of the image (override to point at an online copy)."""
        return self.image_info[image_id]["path"]

    def load_image(self, image_id):
        """Read the image file of ``image_id`` as matterport does.

        Returns
        -------
        ndarray, [H, W, C], the file's dtype
            A 2-D (grayscale) picture is repeated to 3 channels
            (``skimage.color.gray2rgb``) and an alpha channel (``C == 4``) is
            dropped; nothing else is changed: a 16-bit or float file keeps its
            dtype and values, as in matterport.

        Raises
        ------
        DatasetError
            Naming the file, when it cannot be decoded (``FileNotFoundError``
            is raised as is).
        """
        import skimage.color
        import skimage.io

        path = self.image_info[image_id]["path"]
        try:
            image = skimage.io.imread(path)
        except FileNotFoundError:
            raise
        except Exception as exc:  # skimage/imageio raise many types for corrupt files
            raise DatasetError(f"{path}: cannot read the image ({exc})") from exc
        if image.ndim != 3:
            image = skimage.color.gray2rgb(image)
        if image.shape[-1] == 4:
            image = image[..., :3]
        return image

    def load_mask(self, image_id):
        """Instance masks of the image: override in subclasses.

        Returns
        -------
        masks : ndarray, bool, [H, W, N]
        class_ids : ndarray, int32, [N]

        The base class returns matterport's "no instance" arrays: float
        ``[0, 0, 0]`` masks and int32 ``[0]`` class ids (``load_image_gt`` turns
        them into ``[H, W, 0]``), and logs a warning (once per data set;
        matterport logged it on every call).
        """
        if not self._empty_mask_logged:
            logger.warning("%s.load_mask is not overridden: returning no instances",
                           type(self).__name__)
            self._empty_mask_logged = True
        return np.empty([0, 0, 0]), np.empty([0], np.int32)


def _clean_name(name):
    """Shorten a class name to its first comma-separated part."""
    return ",".join(str(name).split(",")[:1])
