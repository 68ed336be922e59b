"""MNIST: from a local folder, the cache, a verified download, or a small bundled subset.

:func:`mnist` returns float32 images in [0, 1] of shape (n, 784) and int64
labels. It looks for the four official IDX files in this order:

1. the folder named by ``$DAE_TUTOR_DATA`` (``.gz`` or uncompressed files);
2. the cache, ``<cache>/mnist`` (see :mod:`dae_tutor.cache`), verified by MD5;
3. a download from :data:`MIRRORS` (or the space/comma-separated base URLs in
   ``$DAE_TUTOR_MNIST_MIRRORS``; set it empty to forbid downloads), each file
   checked against the official MD5 before it is written atomically into the cache;
4. failing all of those, the 5,000-digit subset bundled in the repository's
   ``data/`` folder, with a printed notice that it is not full MNIST.

"train" and "valid" are the standard 50,000/10,000 split of the official
training set (the first 50,000 and the last 10,000 images); "test" is the
official 10,000-image test set. Nothing is read or downloaded at import.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import struct
import urllib.request
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

from dae_tutor import cache, checks

DATA_ENV_VAR = "DAE_TUTOR_DATA"
MIRRORS_ENV_VAR = "DAE_TUTOR_MNIST_MIRRORS"
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
# The official MD5 sums of the gzipped files (as in torchvision.datasets.MNIST.resources).
MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
DOWNLOAD_TIMEOUT_S = 20.0
SPLITS = ("train", "valid", "test")
BINARIZE_MODES = ("threshold", "stochastic")
N_VALID = 10_000  # the last N_VALID images of the official training set form "valid"

BUNDLED_DIR = Path(__file__).resolve().parents[1] / "data"
BUNDLED_STEM = "mnist_5k"
BUNDLED_SPLITS = {"train": slice(0, 4000), "valid": slice(4000, 4500), "test": slice(4500, 5000)}

# IDX element types: the third byte of the magic number -> big-endian NumPy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (gzipped or raw) into an array of its declared dtype and shape.

    Raises ``ValueError`` naming ``path`` when the file is not valid IDX: bad
    gzip stream, wrong magic number, unknown dtype code, or a byte count that
    does not match the dimensions in the header.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or path-like, got {type(path).__name__}")
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"{path}: not a valid gzip file (truncated or corrupted?): {error}") from None
    return _decode_idx(raw, str(path))


def _decode_idx(raw: bytes, where: str) -> np.ndarray:
    """Parse the bytes of an IDX file; ``where`` names the file in error messages."""
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise ValueError(f"{where}: not an IDX file (the magic number must start with two zero bytes)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{where}: unknown IDX dtype code 0x{code:02x}")
    if ndim == 0 or len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{where}: IDX header declares {ndim} dimensions but the file is too short")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    body = raw[4 + 4 * ndim :]
    if len(body) != expected:
        raise ValueError(f"{where}: header dims {shape} need {expected} data bytes, found {len(body)}")
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def binarize(x: torch.Tensor, mode: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Binarize intensities ``x`` in [0, 1]: ``"threshold"`` (x > 0.5) or ``"stochastic"`` (Bernoulli(x)).

    Returns a tensor of ``x``'s dtype and device holding 0s and 1s; the stochastic
    mode draws from ``generator`` (same seed, same result).
    """
    checks.tensor("x", x)
    mode = checks.one_of("mode", mode, BINARIZE_MODES)
    generator = checks.generator("generator", generator)
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"x must lie in [0, 1], got values in [{x.min().item()}, {x.max().item()}]")
    return _binarize(x, mode, generator)


def _binarize(x: torch.Tensor, mode: str, generator: torch.Generator | None) -> torch.Tensor:
    """:func:`binarize` without the argument checks (``mnist`` has a parameter of that name)."""
    if mode == "threshold":
        return (x > 0.5).to(x.dtype)
    return torch.bernoulli(x, generator=generator)


def mnist(
    split: str = "train", *, binarize: str | None = None, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST ``split`` ("train", "valid", "test"): float32 images (n, 784) in [0, 1], int64 labels (n,).

    ``binarize`` is ``None`` (grey levels), ``"threshold"`` or ``"stochastic"``
    (see :func:`binarize`, drawn from ``generator``). The module docstring lists
    where the data come from; the bundled subset is used, with a printed notice,
    only when full MNIST cannot be found or downloaded.
    """
    split = checks.one_of("split", split, SPLITS)
    if binarize is not None:
        checks.one_of("binarize", binarize, BINARIZE_MODES)
    generator = checks.generator("generator", generator)
    images, labels = _load_split(split)
    if binarize is not None:
        images = _binarize(images, binarize, generator)
    return images, labels


def _load_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of ``split`` from the first source that has them."""
    stem = "t10k" if split == "test" else "train"
    paths = _from_data_dir(stem)
    reasons = []
    if paths is None:
        reasons.append(f"${DATA_ENV_VAR} is unset or lacks the {stem} files")
        try:
            paths = (
                _cached_or_downloaded(f"{stem}-images-idx3-ubyte.gz"),
                _cached_or_downloaded(f"{stem}-labels-idx1-ubyte.gz"),
            )
        except OSError as error:
            reasons.append(str(error))
            return _bundled_split(split, reasons)
    images, labels = _read_pair(*paths)
    part = _official_part(split, len(labels), paths[1])
    return _to_tensors(images[part], labels[part])


def _official_part(split: str, n: int, where: Path) -> slice:
    """Rows of ``split`` in an official file of ``n`` images (the last N_VALID train images are "valid")."""
    if split == "test":
        return slice(0, n)
    if n <= N_VALID:
        raise ValueError(f"{where}: a training file needs more than {N_VALID} images, got {n}")
    return slice(0, n - N_VALID) if split == "train" else slice(n - N_VALID, n)


def _data_dir() -> Path | None:
    """The folder named by ``$DAE_TUTOR_DATA``, or ``None`` when it is unset."""
    value = os.environ.get(DATA_ENV_VAR, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ValueError(f"{DATA_ENV_VAR}={value!r} is not an existing directory")
    return path


def _from_data_dir(stem: str) -> tuple[Path, Path] | None:
    """The images and labels files for ``stem`` ("train"/"t10k") in ``$DAE_TUTOR_DATA``, if both are there."""
    directory = _data_dir()
    if directory is None:
        return None
    found = []
    for name in (f"{stem}-images-idx3-ubyte", f"{stem}-labels-idx1-ubyte"):
        candidates = [directory / f"{name}.gz", directory / name]
        found.append(next((path for path in candidates if path.is_file()), None))
    return None if None in found else (found[0], found[1])


def _mirrors() -> list[str]:
    """Base URLs to download from: ``$DAE_TUTOR_MNIST_MIRRORS`` if set (empty: none), else :data:`MIRRORS`."""
    value = os.environ.get(MIRRORS_ENV_VAR)
    if value is None:
        return list(MIRRORS)
    urls = value.replace(",", " ").split()
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{MIRRORS_ENV_VAR} must list http:// or https:// base URLs, got {url!r}")
    return [url if url.endswith("/") else url + "/" for url in urls]


def _md5(data: bytes) -> str:
    """Hex MD5 digest of ``data`` (the checksum the official MNIST files are published with)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _cached_or_downloaded(name: str) -> Path:
    """Path of the verified file ``name`` in the cache, downloading it first when needed.

    A cached file with the wrong MD5 is deleted with a warning. Raises ``OSError``
    listing what went wrong with every mirror when no valid copy can be fetched.
    """
    path = cache.directory() / "mnist" / name
    if path.is_file():
        if _md5(path.read_bytes()) == MD5[name]:
            return path
        warnings.warn(f"cached {path} fails its MD5 check; deleting it and downloading again", stacklevel=2)
        path.unlink()
    failures = []
    for base in _mirrors():
        url = base + name
        print(f"Downloading {url} ...")
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                data = response.read()
        except (OSError, http.client.HTTPException) as error:
            failures.append(f"{url}: {error!r}")
            continue
        if _md5(data) != MD5[name]:
            failures.append(
                f"{url}: {len(data):,} bytes with the wrong MD5 (truncated or corrupted); discarded"
            )
            continue
        cache.write_bytes_atomic(path, data)
        return path
    raise OSError(f"could not download {name}: " + ("; ".join(failures) or f"${MIRRORS_ENV_VAR} is empty"))


def _read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and cross-check an images/labels pair of IDX files: uint8 (n, rows, cols) and (n,)."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"{images_path}: expected uint8 images (n, rows, cols), got {images.dtype} {images.shape}"
        )
    if labels.shape != images.shape[:1]:
        raise ValueError(f"{labels_path}: expected {len(images)} labels, got shape {labels.shape}")
    return images, labels


def _to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (n, rows, cols) and labels as float32 (n, rows * cols) in [0, 1] and int64 (n,)."""
    pixels = images.reshape(len(images), -1).astype(np.float32)
    pixels /= 255.0
    return torch.from_numpy(pixels), torch.from_numpy(labels.astype(np.int64))


def _bundled_split(split: str, reasons: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``split`` of the bundled 5,000-digit subset, after printing that it is not full MNIST."""
    paths = [BUNDLED_DIR / f"{BUNDLED_STEM}-{kind}.gz" for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")]
    how_to = (
        f"set {DATA_ENV_VAR} to a folder holding the four MNIST IDX files "
        "(train-images-idx3-ubyte.gz, ...), or let mnist() download them"
    )
    why = "; ".join(reasons)
    if not all(path.is_file() for path in paths):
        raise FileNotFoundError(
            f"MNIST is not available ({why}), and the bundled subset is not in {BUNDLED_DIR} "
            f"(it comes with the book's repository, not with the pip package). To get MNIST, {how_to}."
        )
    images, labels = _read_pair(*paths)
    part = BUNDLED_SPLITS[split]
    print(
        f"NOTE: this is the SMALL MNIST SUBSET bundled in {BUNDLED_DIR} ({part.stop - part.start:,} "
        f"{split!r} images of its {len(labels):,}), NOT full MNIST: numbers will differ from the papers'.\n"
        f"Full MNIST was not found ({why}). To use it, {how_to}."
    )
    return _to_tensors(images[part], labels[part])
