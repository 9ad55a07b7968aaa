"""imgaug augmenters made fast, with the same random draws and the same results.

imgaug's ``PiecewiseAffine`` (the RSNA notebook's second geometric augmenter) costs
about 150-190 ms for one 256 x 256 image on this project's 2-core machine, ten
times the rest of the training input put together: scikit-image's
``PiecewiseAffineTransform`` locates each of the 65,536 pixels in the mesh with
Qhull's directed walk, estimates a forward and an inverse mesh (the inverse is
never used), and the warp interpolates every channel of a grey image repeated
to RGB. :class:`PiecewiseAffine` (same name) keeps imgaug's sampling and geometry and
computes the same warp in about 5-10 ms:

* the triangulation of the control-point grid depends only on the image shape
  and the grid size, so it is built once per (shape, rows, cols);
* pixels are located with ``find_simplex(bruteforce=True)`` (a handful of
  triangles: much faster than the walk), then mapped with one affine
  transform per triangle (solved exactly from its three vertices);
* the coordinates go to ``scipy.ndimage.map_coordinates`` as in scikit-image's
  ``warp`` (mode ``constant`` -> ``grid-constant``, no prefilter for orders 0
  and 1, the output clipped to the input's range), once per distinct channel.

Interpolation orders above 1 (whose spline prefilter runs across channels in
scikit-image) fall back to imgaug's own code. Equality with imgaug is tested
(``tests/detector/test_augmenters.py``): identical uint8 outputs, up to a rounding tie.
"""
from __future__ import annotations

import functools

import imgaug.augmenters as iaa
import imgaug.dtypes as iadt
import numpy as np

__all__ = ["PiecewiseAffine", "piecewise_affine_coordinates"]


@functools.lru_cache(maxsize=32)
def _grid_mesh(height, width, nb_rows, nb_cols):
    """imgaug's control-point grid and where every pixel falls in its triangulation.

    Returns
    -------
    points_yx : float64 [P, 2]
        Source control points (row, col), row-major as imgaug orders them.
    simplices : int [T, 3]
        The Delaunay triangles (indexes into the points), as scikit-image builds them.
    inverse_vertices : float64 [T, 3, 3]
        Per triangle, the inverse of its vertices' homogeneous (x, y, 1) matrix.
    pixel_triangle : int [H * W]
        Triangle of every pixel in scikit-image's ``warp_coords`` order (-1: outside).
    pixels : float64 [H * W, 2]
        The pixels' (x, y) in that order.
    """
    from scipy.spatial import Delaunay

    y = np.linspace(0, height, nb_rows)
    x = np.linspace(0, width, nb_cols)
    xx, yy = np.meshgrid(x, y)
    points_yx = np.dstack([yy.flat, xx.flat])[0]
    mesh = Delaunay(points_yx[:, ::-1])
    vertices = mesh.points[mesh.simplices]  # [T, 3, (x, y)]
    homogeneous = np.concatenate([vertices, np.ones(vertices.shape[:2] + (1,))], axis=2)
    pixels = np.indices((width, height), dtype=np.float64).reshape(2, -1).T
    pixel_triangle = mesh.find_simplex(pixels, bruteforce=True)  # a few triangles: faster than the walk
    for array in (points_yx, homogeneous, pixels, pixel_triangle):
        array.setflags(write=False)
    return points_yx, mesh.simplices, np.linalg.inv(homogeneous), pixel_triangle, pixels


def piecewise_affine_coordinates(shape, nb_rows, nb_cols, jitter, absolute_scale=False):
    """Where each output pixel samples the input under imgaug's PiecewiseAffine, or None (no warp).

    Parameters
    ----------
    shape : tuple
        The array's shape ``(H, W[, C])``.
    nb_rows, nb_cols : int
        Control-point grid (imgaug's samples, at least 2 each).
    jitter : float array [nb_rows * nb_cols, 2]
        imgaug's sampled (dy, dx) per control point, as fractions of the image
        size (pixels when ``absolute_scale``).
    absolute_scale : bool

    Returns
    -------
    float64 array [2, H, W] or None
        Row and column coordinates in the input (``-1`` outside the mesh), as
        scikit-image's ``warp`` computes them for imgaug's transform (equal up to
        float64 rounding); None where imgaug leaves the array unchanged (zero
        jitter, an axis of size <= 1, no channel).
    """
    height, width = int(shape[0]), int(shape[1])
    jitter = np.array(jitter, dtype=np.float64, copy=True)
    if not np.any(jitter > 0) or height <= 1 or width <= 1 or (len(shape) == 3 and shape[2] == 0):
        return None
    points_yx, simplices, inverse_vertices, pixel_triangle, pixels = _grid_mesh(height, width, int(nb_rows),
                                                                               int(nb_cols))
    if absolute_scale:
        jitter[:, 0] /= height
        jitter[:, 1] /= width
    destination = points_yx + jitter * (height, width)
    destination[:, 0] = np.clip(destination[:, 0], 0, height - 1)
    destination[:, 1] = np.clip(destination[:, 1], 0, width - 1)
    # per triangle, the affine map [3 (x, y, 1), 2] taking its source vertices to their destinations
    affines = inverse_vertices @ destination[:, ::-1][simplices]
    inside = pixel_triangle >= 0
    triangle = np.where(inside, pixel_triangle, 0)
    mapped = np.empty((2, len(pixels)), np.float64)
    for axis in (0, 1):  # x', y'
        mapped[axis] = (pixels[:, 0] * affines[triangle, 0, axis] + pixels[:, 1] * affines[triangle, 1, axis]
                        + affines[triangle, 2, axis])
    mapped[:, ~inside] = -1.0
    mapped = mapped.reshape(2, width, height).swapaxes(1, 2)  # scikit-image's layout: [2 (x', y'), H, W]
    return np.stack([mapped[1], mapped[0]])  # [2 (row, col), H, W]


def _warp(image, coordinates, order, mode, cval):
    """scikit-image's ``warp(image, ..., preserve_range=True)`` for precomputed 2-D coordinates, orders 0 and 1."""
    from scipy import ndimage
    from skimage._shared.utils import _to_ndimage_mode

    image = image.astype(np.float64)
    ndi_mode = _to_ndimage_mode(mode)
    planes = image[..., np.newaxis] if image.ndim == 2 else image
    warped = np.empty(coordinates.shape[1:] + (planes.shape[2],), np.float64)
    done = {}
    for channel in range(planes.shape[2]):
        plane = planes[..., channel]
        twin = next((c for c in done if np.array_equal(planes[..., c], plane)), None)
        if twin is not None:  # a grey image repeated to RGB: warp it once
            warped[..., channel] = warped[..., twin]
            continue
        warped[..., channel] = ndimage.map_coordinates(plane, coordinates, prefilter=False, mode=ndi_mode,
                                                       order=order, cval=cval)
        done[channel] = True
    warped = warped[..., 0] if image.ndim == 2 else warped
    _clip_like_skimage(image, warped, mode, cval)
    return warped


def _clip_like_skimage(image, warped, mode, cval):
    """scikit-image's ``_clip_warp_output(..., clip=True)``: clip to the input's range (cval kept when used)."""
    low, high = np.min(image), np.max(image)
    if mode == "constant" and not low <= cval <= high and np.min(warped) <= cval <= np.max(warped):
        low, high = min(low, cval), max(high, cval)
    np.clip(warped, low, high, out=warped)


class PiecewiseAffine(iaa.PiecewiseAffine):
    """imgaug's ``PiecewiseAffine`` with a fast warp for images (module docstring).

    Same constructor, same parameters, same random draws; images warped with
    interpolation order 0 or 1 take the fast path, everything else (heatmaps,
    segmentation maps, keypoints, orders above 1) imgaug's code. It keeps
    imgaug's class name, so that code choosing augmenters by name (matterport's
    mask hook, ``mrcnn.input.ground_truth.MASK_AUGMENTERS``) treats it as imgaug's.
    """

    def _augment_images_by_samples(self, images, samples):
        if any(int(order) > 1 for order in samples.order):
            return super()._augment_images_by_samples(images, samples)
        iadt.gate_dtypes_strs(images, allowed="bool uint8 uint16 uint32 int8 int16 int32 float16 float32 float64",
                              disallowed="uint64 int64 float128", augmenter=self)
        result = images
        for i, image in enumerate(images):
            coordinates = piecewise_affine_coordinates(image.shape, samples.nb_rows[i], samples.nb_cols[i],
                                                       samples.jitter[i], self.absolute_scale)
            if coordinates is None:
                continue
            input_dtype = image.dtype
            warped = _warp(image, coordinates, int(samples.order[i]), samples.mode[i],
                           samples.get_clipped_cval(i, image.dtype))
            result[i] = warped > 0.5 if input_dtype.kind == "b" else iadt.restore_dtypes_(warped, input_dtype)
        return result
