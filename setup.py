"""Packaging for rsna_detector.

Dependency notes
----------------
* TensorFlow >= 2.16 ships Keras 3 as ``tf.keras``; the engine uses only public
  Keras 3 / TensorFlow APIs (no ``keras.engine``, no ``tf.compat.v1``).
* Augmentation: imgaug 0.4.0 (the last release of the original project) does not
  import under numpy 2 (it uses the removed ``np.sctypes``). We depend on
  ``pyimgaug``, a maintained numpy-2-compatible fork that installs the same
  ``imgaug`` module, rather than pinning numpy < 2: pinning numpy would hold back
  TensorFlow, pandas, scikit-image and pydicom releases that now require or
  prefer numpy 2, while the fork keeps every ``imgaug.augmenters`` pipeline that
  matterport-style notebooks write working unchanged.
* The RSNA DICOMs are JPEG Baseline compressed: pydicom needs pylibjpeg with
  pylibjpeg-libjpeg to decode them. Pillow (libjpeg-turbo) is the fast path.
"""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "tensorflow>=2.16,<2.22",
    "keras-hub>=0.18",
    "pydicom>=3.0,<4",
    "pylibjpeg>=2.0",
    "pylibjpeg-libjpeg>=2.1",
    "pyimgaug>=0.5",
    "scikit-image>=0.22",
    "scipy>=1.10",  # ndimage.zoom: resize_mask samples masks exactly as matterport
    "numpy>=1.26",
    "pandas>=2.0",
    "h5py>=3.10",
    "matplotlib>=3.8",
    "tqdm>=4.66",
    "pillow>=10.0",
]

EXTRAS_REQUIRE = {
    "test": ["pytest>=8", "nbclient>=0.10", "nbformat>=5.9", "ipykernel>=6.29"],
    # TensorFlow 2.21 no longer installs TensorBoard; training writes its logs when present.
    "tensorboard": ["tensorboard>=2.16"],
}

setup(
    name="rsna_detector",
    version="0.1.0",
    description=(
        "Mask R-CNN pneumonia-opacity detector for the RSNA Pneumonia Detection "
        "Challenge on TensorFlow 2 / Keras 3, with a matterport-compatible engine."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10,<3.14",
    packages=find_packages(include=["rsna_detector", "rsna_detector.*"]),
    package_data={"rsna_detector.weights": ["weights_registry.json"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["rsna-detector=rsna_detector.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: MIT License",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
    ],
)
