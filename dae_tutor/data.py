"""MNIST and SVHN: from a local folder, the cache, a verified download (MNIST: or a bundled subset).

:func:`mnist` returns float32 images in [0, 1] of shape (n, 784) and int64
labels. It looks for the four official IDX files in this order:

1. the folder named by ``$DAE_TUTOR_DATA`` (``.gz`` or uncompressed files);
2. the cache, ``<cache>/mnist`` (see :mod:`dae_tutor.cache`), verified by MD5;
3. a download from :data:`MIRRORS` (or the space/comma-separated base URLs in
   ``$DAE_TUTOR_MNIST_MIRRORS``; set it empty to forbid downloads), each file
   checked against the official MD5 before it is written atomically into the cache;
4. failing all of those, the 5,000-digit subset bundled with the package
   (``dae_tutor/bundled/``), with a printed notice that it is not full MNIST.

"train" and "valid" are the standard 50,000/10,000 split of the official
training set (the first 50,000 and the last 10,000 images); "test" is the
official 10,000-image test set. Nothing is read or downloaded at import.

:func:`svhn` returns the Street View House Numbers digits (Netzer et al., 2011; the
"permutation-invariant SVHN" of thesis ch. 7 is these images flattened) from the
official ``train_32x32.mat``, ``test_32x32.mat`` and ``extra_32x32.mat``, looked for in
the same order: ``$DAE_TUTOR_DATA``, the cache ``<cache>/svhn`` (MD5-verified), a download
from :data:`SVHN_MIRRORS` (or ``$DAE_TUTOR_SVHN_MIRRORS``; set it empty to forbid
downloads) checked against the official MD5s. There is no bundled fallback: without the
files it raises ``FileNotFoundError`` saying how to get them.

:func:`binary_digits` gives chapter 2's binary digits: scikit-learn's 8×8 digits or MNIST, thresholded.
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
import scipy.io
import torch

from dae_tutor import cache, checks, runtime

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
SVHN_MIRRORS_ENV_VAR = "DAE_TUTOR_SVHN_MIRRORS"
SVHN_MIRRORS = ("http://ufldl.stanford.edu/housenumbers/",)
# The official MD5 sums (as in torchvision.datasets.SVHN.split_list).
SVHN_MD5 = {
    "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
    "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
    "extra_32x32.mat": "a93ce644f1a588dc4d68dda5feec44a7",
}
SVHN_N_VALID = 6_000  # the last SVHN_N_VALID images of train_32x32.mat form "valid"
SVHN_SHAPE = (3, 32, 32)  # channels, rows, columns: the order of the flattened pixels
DOWNLOAD_TIMEOUT_S = 20.0
SPLITS = ("train", "valid", "test")
BINARIZE_MODES = ("threshold", "stochastic")
BINARY_DIGITS = ("digits8x8", "mnist")  # the data sets of binary_digits
N_VALID = 10_000  # the last N_VALID images of the official training set form "valid"

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"  # package data: ships in the wheel
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


def _official_part(split: str, n: int, where: Path, n_valid: int = N_VALID) -> slice:
    """Rows of ``split`` in an official file of ``n`` images (the last ``n_valid`` form "valid")."""
    if split == "test":
        return slice(0, n)
    if n <= n_valid:
        raise ValueError(f"{where}: a training file needs more than {n_valid} images, got {n}")
    return slice(0, n - n_valid) if split == "train" else slice(n - n_valid, n)


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


def _mirrors(env_var: str = MIRRORS_ENV_VAR, default: tuple[str, ...] = MIRRORS) -> list[str]:
    """Base URLs to download from: ``$env_var`` if set (empty: none), else ``default``."""
    value = os.environ.get(env_var)
    if value is None:
        return list(default)
    urls = value.replace(",", " ").split()
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{env_var} must list http:// or https:// base URLs, got {url!r}")
    return [url if url.endswith("/") else url + "/" for url in urls]


def _md5(data: bytes) -> str:
    """Hex MD5 digest of ``data`` (the checksum the official MNIST and SVHN files are published with)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _cached_or_downloaded(
    name: str,
    folder: str = "mnist",
    md5: dict[str, str] = MD5,
    env_var: str = MIRRORS_ENV_VAR,
    default: tuple[str, ...] = MIRRORS,
) -> Path:
    """Path of the verified file ``name`` in ``<cache>/folder``, downloading it first when needed.

    ``md5`` maps file names to their official MD5; the mirrors are ``$env_var`` or ``default``
    (see :func:`_mirrors`). A cached file with the wrong MD5 is deleted with a warning. Raises
    ``OSError`` listing what went wrong with every mirror when no valid copy can be fetched.
    """
    path = cache.directory() / folder / name
    if path.is_file():
        if _md5(path.read_bytes()) == md5[name]:
            return path
        warnings.warn(f"cached {path} fails its MD5 check; deleting it and downloading again", stacklevel=2)
        path.unlink()
    failures = []
    for base in _mirrors(env_var, default):
        url = base + name
        print(f"Downloading {url} ...")
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                data = response.read()
        except (OSError, http.client.HTTPException) as error:
            failures.append(f"{url}: {error!r}")
            continue
        if _md5(data) != md5[name]:
            failures.append(
                f"{url}: {len(data):,} bytes with the wrong MD5 (truncated or corrupted); discarded"
            )
            continue
        cache.write_bytes_atomic(path, data)
        return path
    raise OSError(f"could not download {name}: " + ("; ".join(failures) or f"${env_var} is empty"))


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
    """uint8 images (n, ...) and labels as float32 (n, pixels) in [0, 1] (C order) and int64 (n,)."""
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
            f"(it ships with the package: reinstall dae_tutor). To get MNIST, {how_to}."
        )
    images, labels = _read_pair(*paths)
    part = BUNDLED_SPLITS[split]
    print(
        f"NOTE: this is the SMALL MNIST SUBSET bundled with dae_tutor "
        f"({part.stop - part.start:,} {split!r} images of its {len(labels):,}), NOT full MNIST: "
        "numbers will differ from the papers'.\n"
        f"Full MNIST was not found ({why}). To use it, {how_to}."
    )
    return _to_tensors(images[part], labels[part])


def svhn(split: str = "train", *, extra: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """SVHN ``split`` ("train", "valid", "test"): float32 images (n, 3072) in [0, 1], int64 labels in 0–9.

    Each image is flattened channel-major, ``(channel, row, column)`` as in :data:`SVHN_SHAPE`:
    ``images.view(n, 3, 32, 32)`` gives it back. The files label the digit 0 as 10; here it is 0.
    "valid" is the last :data:`SVHN_N_VALID` (6,000) images of ``train_32x32.mat``, "train" the
    others (67,257), "test" the 26,032 of ``test_32x32.mat``. ``extra=True`` (only with "train")
    appends the 531,131 images of ``extra_32x32.mat`` (598,388 in all; the float32 tensor takes
    7.4 GB): thesis §7.5.1 trained on train + extra less a random 5 % for validation.
    The module docstring lists where the files come from.
    """
    split = checks.one_of("split", split, SPLITS)
    extra = checks.boolean("extra", extra)
    if extra and split != "train":
        raise ValueError(f"extra=True appends the extra set to split='train' only, got split={split!r}")
    path = _svhn_file("test_32x32.mat" if split == "test" else "train_32x32.mat")
    images, labels = _read_svhn(path)
    part = _official_part(split, len(labels), path, SVHN_N_VALID)
    images, labels = images[part], labels[part]
    if extra:
        more_images, more_labels = _read_svhn(_svhn_file("extra_32x32.mat"))
        images, labels = np.concatenate([images, more_images]), np.concatenate([labels, more_labels])
    return _to_tensors(images, labels)


def _svhn_file(name: str) -> Path:
    """``name`` from ``$DAE_TUTOR_DATA``, else the verified cache or download; else ``FileNotFoundError``."""
    directory = _data_dir()
    if directory is not None and (directory / name).is_file():
        return directory / name
    reasons = [f"${DATA_ENV_VAR} is unset" if directory is None else f"{directory} has no {name}"]
    try:
        return _cached_or_downloaded(name, "svhn", SVHN_MD5, SVHN_MIRRORS_ENV_VAR, SVHN_MIRRORS)
    except OSError as error:
        reasons.append(str(error))
    raise FileNotFoundError(
        f"SVHN file {name} is not available ({'; '.join(reasons)}). To get it, download "
        f"{SVHN_MIRRORS[0]}{name} (MD5 {SVHN_MD5[name]}) into a folder and set {DATA_ENV_VAR} to that "
        f"folder, or put it in {cache.directory() / 'svhn'}, or let svhn() download it "
        f"(unset {SVHN_MIRRORS_ENV_VAR}, or set it to mirror base URLs)."
    )


def _read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An SVHN .mat file as uint8 images (n, 3, 32, 32) and uint8 labels (n,) in 0–9 (10 becomes 0)."""
    try:
        mat = scipy.io.loadmat(path)
    except NotImplementedError:  # scipy's answer to MATLAB v7.3 (HDF5) files
        raise ValueError(
            f"{path}: a MATLAB v7.3 (HDF5) file, which scipy cannot read; the official SVHN files are v5"
        ) from None
    except (ValueError, OSError, scipy.io.matlab.MatReadError) as error:
        raise ValueError(f"{path}: not a readable MATLAB file (truncated or corrupted?): {error}") from None
    x, y = mat.get("X"), mat.get("y")
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        found = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"{path}: expected uint8 images X of shape (32, 32, 3, n), got {found}")
    if not isinstance(y, np.ndarray) or y.size != x.shape[3]:
        found = y.shape if isinstance(y, np.ndarray) else type(y).__name__
        raise ValueError(f"{path}: expected {x.shape[3]} labels y, got {found}")
    labels = y.reshape(-1).astype(np.int64)
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise ValueError(f"{path}: labels y must lie in 1..10, got [{labels.min()}, {labels.max()}]")
    return x.transpose(3, 2, 0, 1), (labels % 10).astype(np.uint8)


def binary_digits(name: str) -> tuple[dict[str, torch.Tensor], torch.Tensor, int]:
    """Threshold-binarised digits (x > 0.5) for chapter 2: ``({split: images}, train labels, image side)``.

    ``"digits8x8"``: scikit-learn's 1,797 8×8 digits (grey levels / 16), shuffled by a generator seeded 0,
    split 1200 / 300 / 297 into train / valid / test; ``"mnist"``: :func:`mnist`'s three splits (28×28).
    Images are float32 (n, side²) in {0, 1}.
    """
    name = checks.one_of("name", name, BINARY_DIGITS)
    if name == "digits8x8":
        from sklearn.datasets import load_digits

        raw = load_digits()
        x = binarize(torch.tensor(raw.data / 16, dtype=torch.float32), "threshold")
        labels = torch.tensor(raw.target)
        order = torch.randperm(len(x), generator=runtime.generator(0))
        x, labels = x[order], labels[order]
        return {"train": x[:1200], "valid": x[1200:1500], "test": x[1500:]}, labels[:1200], 8
    splits = {s: mnist(s, binarize="threshold") for s in SPLITS}
    return {s: v[0] for s, v in splits.items()}, splits["train"][1], 28
