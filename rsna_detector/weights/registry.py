"""Registry of downloadable weight files: where they come from, their checksums, the local cache.

Entries live in ``weights_registry.json`` beside this module: 'coco' (matterport's
``mask_rcnn_coco.h5``), 'imagenet' (Keras ResNet-50 without top, matterport's
backbone initialisation) and 'chexnet' (CheXNet Keras weights; no public direct
URL, so it must be placed by hand).

Where :func:`fetch_weights` looks, in order
--------------------------------------------
1. ``destination`` when given (a file path, or a folder holding the file);
2. every folder of ``$RSNA_DETECTOR_WEIGHTS_DIR`` (``os.pathsep``-separated):
   put hand-downloaded files there;
3. the cache: ``cache_dir``, else ``$RSNA_DETECTOR_CACHE``, else
   ``~/.cache/rsna_detector/weights``.

Only when none holds the file, and neither ``offline=True`` nor
``RSNA_DETECTOR_OFFLINE=1`` is set, it is downloaded (urllib, tqdm progress) into a
temporary file in the target folder, checked, then renamed into place.

Checksums
---------
Every file used is hashed (MD5 and SHA-256 in one pass) and compared with the
registry's size, MD5 and SHA-256. No SHA-256 is published for these files, so
the first download records it in the cache's ``checksums.json`` and every later
use is checked against it too. A file that fails is never used: a file the
library downloaded (in the cache or at ``destination``) is renamed
``<name>.corrupt`` and an error says so; a file the user placed is left where it
is and refused.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from .._io import atomic_path, atomic_write, rename_over
from ..errors import InputFileNotFoundError, RsnaDetectorError

__all__ = [
    "WeightsEntry",
    "WeightsError",
    "WeightsOfflineError",
    "WeightsChecksumError",
    "UnknownWeightsError",
    "fetch_weights",
    "verify_file",
    "list_weights",
    "load_registry",
    "default_cache_dir",
    "REGISTRY_PATH",
    "CHECKSUMS_FILE",
    "ENV_WEIGHTS_DIR",
    "ENV_CACHE",
    "ENV_OFFLINE",
]

REGISTRY_PATH = Path(__file__).with_name("weights_registry.json")
CHECKSUMS_FILE = "checksums.json"
ENV_WEIGHTS_DIR = "RSNA_DETECTOR_WEIGHTS_DIR"
ENV_CACHE = "RSNA_DETECTOR_CACHE"
ENV_OFFLINE = "RSNA_DETECTOR_OFFLINE"
_CHUNK = 1 << 20


class WeightsError(RsnaDetectorError, RuntimeError):
    """A weights file could not be provided.

    A ``RuntimeError``, not a ``ValueError``: what is wrong is the machine (the file is absent,
    offline, or damaged), not the argument; :class:`UnknownWeightsError` (a name that is neither
    registered nor a file) is the one bad-argument case and is a ``WeightsError`` as well, so that
    one ``except WeightsError`` covers every way of not getting the file.
    """


class WeightsOfflineError(WeightsError):
    """The file is not on this machine and cannot be downloaded (offline, unreachable, or no URL)."""


class WeightsChecksumError(WeightsError):
    """A file's size or hash differs from the expected one; the file was not used."""


class UnknownWeightsError(WeightsError):
    """Neither a registered weights name nor an existing file."""


@dataclass(frozen=True)
class WeightsEntry:
    """One registered weights file.

    Attributes
    ----------
    name : str
        Registry key ('coco', 'imagenet', 'chexnet').
    filename : str
        File name in the cache and in ``$RSNA_DETECTOR_WEIGHTS_DIR``.
    url : str or None
        Download URL; None when the file must be placed by hand.
    size : int or None
        Expected size in bytes.
    md5, sha256 : str or None
        Expected hex digests (lower case).
    description : str
    manual : str or None
        Where to get the file by hand when there is no URL.
    """

    name: str
    filename: str
    url: Optional[str] = None
    size: Optional[int] = None
    md5: Optional[str] = None
    sha256: Optional[str] = None
    description: str = ""
    manual: Optional[str] = None


# --------------------------------------------------------------------------- registry
def load_registry(path=None):
    """The registry as ``{name: WeightsEntry}``.

    Parameters
    ----------
    path : str or Path, optional
        A registry JSON file (``{"weights": {name: {filename, url, size, md5,
        sha256, description, manual}}}``); default the packaged one.
    """
    path = Path(path or REGISTRY_PATH)
    try:
        raw = json.loads(path.read_text())["weights"]
        return {name: WeightsEntry(name=name, **fields) for name, fields in raw.items()}
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as error:
        raise WeightsError(f"{path}: not a valid weights registry ({error})") from error


def _as_registry(registry):
    if registry is None:
        return load_registry()
    if isinstance(registry, (str, Path)):
        return load_registry(registry)
    return dict(registry)


def list_weights(registry=None):
    """Registered weights as a list of dicts (name, filename, url, size, md5, sha256, description, manual)."""
    return [asdict(entry) for entry in _as_registry(registry).values()]


def default_cache_dir():
    """``$RSNA_DETECTOR_CACHE`` or ``~/.cache/rsna_detector/weights``."""
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "rsna_detector" / "weights").expanduser()


def _weights_dirs():
    value = os.environ.get(ENV_WEIGHTS_DIR, "")
    return [Path(part).expanduser() for part in value.split(os.pathsep) if part]


def _offline(offline):
    if offline is not None:
        return bool(offline)
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in ("1", "true", "yes", "on")


# --------------------------------------------------------------------------- checksums
def _digests(path):
    md5, sha256, size = hashlib.md5(), hashlib.sha256(), 0
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            md5.update(chunk)
            sha256.update(chunk)
            size += len(chunk)
    return {"size": size, "md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def verify_file(path, md5=None, sha256=None, size=None):
    """Hash a file and compare it with the expected values.

    Parameters
    ----------
    path : str or Path
    md5, sha256 : str, optional
        Expected hex digests (case-insensitive); None skips that check.
    size : int, optional
        Expected size in bytes.

    Returns
    -------
    dict
        ``{"size": int, "md5": str, "sha256": str}`` as computed.

    Raises
    ------
    FileNotFoundError
        No such file.
    WeightsChecksumError
        A value differs; the message gives the expected and the computed one.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileNotFoundError(f"{path}: no such file")
    got = _digests(path)
    expected = {"size": size, "md5": md5 and md5.lower(), "sha256": sha256 and sha256.lower()}
    wrong = [f"{key}: expected {value}, got {got[key]}" for key, value in expected.items()
             if value is not None and got[key] != value]
    if wrong:
        raise WeightsChecksumError(f"{path}: checksum mismatch ({'; '.join(wrong)}); the file was not used")
    return got


def _checksums_path(cache_dir):
    return Path(cache_dir) / CHECKSUMS_FILE


def _recorded(cache_dir, filename):
    path = _checksums_path(cache_dir)
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text()).get(filename, {})
    except (OSError, json.JSONDecodeError) as error:
        raise WeightsError(f"{path}: unreadable checksum record ({error}); delete it to record again") from error


def _record(cache_dir, filename, digests):
    path = _checksums_path(cache_dir)
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[filename] = digests
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True))


def _verify_entry_file(path, entry, cache_dir, owned):
    """Check ``path`` against the registry and the recorded SHA-256; move it aside when owned and wrong."""
    sha256 = entry.sha256 or _recorded(cache_dir, entry.filename).get("sha256")
    try:
        return verify_file(path, md5=entry.md5, sha256=sha256, size=entry.size)
    except WeightsChecksumError as error:
        if not owned:
            raise WeightsChecksumError(f"{error}. Replace it with a good copy of {entry.filename}"
                                       f"{_from_url(entry)}.") from error
        aside = rename_over(path, path.with_name(path.name + ".corrupt"))
        raise WeightsChecksumError(f"{error}; it was moved aside to {aside}. Run again to download a "
                                   f"fresh copy{_from_url(entry)}.") from error


def _from_url(entry):
    return f" from {entry.url}" if entry.url else ""


# --------------------------------------------------------------------------- lookup
def _resolve_entry(name_or_path, registry):
    """``(entry or None, explicit path or None)``."""
    key = str(name_or_path)
    if key in registry:
        return registry[key], None
    path = Path(key).expanduser()
    by_filename = {entry.filename: entry for entry in registry.values()}
    if path.is_file():
        return by_filename.get(path.name), path
    if key in by_filename:  # a registered file name that is not in the working directory
        return by_filename[key], None
    raise UnknownWeightsError(
        f"{key!r} is neither a registered weights name nor an existing file. Registered: "
        + "; ".join(f"{e.name} ({e.filename})" for e in registry.values())
    )


def _destination_file(destination, filename):
    if destination is None:
        return None
    destination = Path(destination).expanduser()
    return destination / filename if destination.is_dir() or not destination.suffix else destination


def _find_local(entry, destination_file, cache_dir):
    """``(path, owned)`` of the first local copy, or ``(None, None)``."""
    candidates = []
    if destination_file is not None:
        candidates.append((destination_file, True))
    candidates += [(folder / entry.filename, False) for folder in _weights_dirs()]
    candidates.append((Path(cache_dir) / entry.filename, True))
    for path, owned in candidates:
        if path.is_file():
            return path, owned
    return None, None


def _place_hint(entry, cache_dir):
    return (f"put {entry.filename} in a folder named by ${ENV_WEIGHTS_DIR}, or in the cache {cache_dir}, "
            f"or pass its path instead of {entry.name!r}")


def _offline_error(entry, cache_dir, reason):
    source = f"download {entry.url}" if entry.url else (entry.manual or "get the file by hand")
    return WeightsOfflineError(f"weights {entry.name!r} ({entry.filename}) are not on this machine and {reason}. "
                               f"To provide them: {source}; then {_place_hint(entry, cache_dir)}.")


def fetch_weights(name_or_path, *, cache_dir=None, destination=None, offline=None, progress=True, registry=None):
    """A checked local path to a weights file, downloading it when needed.

    Parameters
    ----------
    name_or_path : str or Path
        A registry name ('coco', 'imagenet', 'chexnet'), a registered file
        name, or the path of a local file.
    cache_dir : str or Path, optional
        Download cache; default ``$RSNA_DETECTOR_CACHE`` or ``~/.cache/rsna_detector/weights``.
    destination : str or Path, optional
        Where the file should end up (a file path, or a folder). A copy found
        elsewhere is copied there; a download goes there instead of the cache.
    offline : bool, optional
        Never download; default from ``RSNA_DETECTOR_OFFLINE`` (``1`` = offline).
    progress : bool
        Show a tqdm bar while downloading.
    registry : dict, str or Path, optional
        ``{name: WeightsEntry}`` or a registry JSON file; default the packaged one.

    Returns
    -------
    Path
        An existing file whose size and checksums (where known) were verified.

    Raises
    ------
    UnknownWeightsError
        Not a registered name and no such file (the message lists the registry).
    WeightsOfflineError
        Not found locally and offline, unreachable, or without a URL (the
        message names the URL, the file name and where to put it).
    WeightsChecksumError
        The file found or downloaded has the wrong size or hash; it is not used.
    """
    registry = _as_registry(registry)
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    entry, explicit = _resolve_entry(name_or_path, registry)
    if explicit is not None:
        if entry is not None:
            _verify_entry_file(explicit, entry, cache_dir, owned=False)
        return explicit
    destination_file = _destination_file(destination, entry.filename)
    found, owned = _find_local(entry, destination_file, cache_dir)
    if found is not None:
        _verify_entry_file(found, entry, cache_dir, owned)
        if destination_file is not None and found != destination_file:
            _copy_atomically(found, destination_file)
            return destination_file
        return found
    if entry.url is None:
        raise _offline_error(entry, cache_dir, "there is no public download URL")
    if _offline(offline):
        raise _offline_error(entry, cache_dir, f"downloads are off (offline mode, ${ENV_OFFLINE}=1)")
    target = destination_file or Path(cache_dir) / entry.filename
    return _download_entry(entry, target, cache_dir, progress)


# --------------------------------------------------------------------------- download
def _copy_atomically(source, target):
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as temporary:
        shutil.copyfile(source, temporary)


def _download(url, target, progress=True, expected_size=None):
    """Stream ``url`` into the file ``target`` (which the caller then checks and renames)."""
    from tqdm.auto import tqdm

    with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as stream:
        total = response.headers.get("Content-Length") if hasattr(response, "headers") else None
        total = int(total) if total else expected_size
        with tqdm(total=total, unit="B", unit_scale=True, desc=Path(target).name.lstrip("."),
                  disable=not progress) as bar:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                stream.write(chunk)
                bar.update(len(chunk))


def _download_entry(entry, target, cache_dir, progress):
    """Download into a temporary file beside ``target``, check it, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as temporary:
        try:
            _download(entry.url, temporary, progress=progress, expected_size=entry.size)
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise _offline_error(entry, cache_dir, f"the download failed ({error})") from error
        try:
            sha256 = entry.sha256 or _recorded(cache_dir, entry.filename).get("sha256")
            digests = verify_file(temporary, md5=entry.md5, sha256=sha256, size=entry.size)
        except WeightsChecksumError as error:
            aside = rename_over(temporary, target.with_name(target.name + ".corrupt"))
            raise WeightsChecksumError(f"download of {entry.url}: {error}; the file was moved aside to "
                                       f"{aside}") from error
    _record(cache_dir, entry.filename, digests)
    return target
