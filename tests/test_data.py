"""Tests of dae_tutor.data: the IDX parser, the four MNIST sources, SVHN, binarization and bad input.

The truth comes from outside the module: the official test-set files and their
MD5SUMS in ../shared, IDX bytes written here with ``struct``, .mat files written with
``scipy.io.savemat`` (the ``svhn_mat`` fixture of conftest.py), and a local HTTP
server. No test reaches the internet: every connection not to 127.0.0.1 fails.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import re
import socket
import struct
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.io
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dae_tutor import data

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
needs_shared = pytest.mark.skipif(
    not all((SHARED / name).is_file() for name in TEST_FILES), reason=f"official test set not in {SHARED}"
)


def md5(blob: bytes) -> str:
    return hashlib.md5(blob, usedforsecurity=False).hexdigest()


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of ``array`` written independently of the module under test."""
    codes = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
    code = codes[array.dtype.kind + str(array.dtype.itemsize)]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def mnist_like(n: int) -> tuple[bytes, bytes]:
    """Gzipped IDX images/labels of ``n`` digits; image i stores i in its first two pixels, label i % 10."""
    index = np.arange(n)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    images[:, 0, 0], images[:, 0, 1] = index % 256, index // 256
    labels = (index % 10).astype(np.uint8)
    return gzip.compress(idx_bytes(images), mtime=0), gzip.compress(idx_bytes(labels), mtime=0)


def decode_index(images: torch.Tensor) -> torch.Tensor:
    """Invert :func:`mnist_like`'s encoding of the row index."""
    pixels = torch.round(images[:, :2] * 255).long()
    return pixels[:, 0] + 256 * pixels[:, 1]


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """A private cache, no $DAE_TUTOR_DATA, no download mirrors, and no connection beyond 127.0.0.1."""
    monkeypatch.setenv("DAE_TUTOR_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DAE_TUTOR_DATA", raising=False)
    monkeypatch.setenv("DAE_TUTOR_MNIST_MIRRORS", "")
    monkeypatch.setenv("DAE_TUTOR_SVHN_MIRRORS", "")
    real_connect = socket.create_connection

    def local_only(address, *args, **kwargs):
        if address[0] not in ("127.0.0.1", "localhost"):
            raise AssertionError(f"a test tried to reach {address}")
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", local_only)


@pytest.fixture
def server():
    """A local HTTP server: ``files`` maps a URL path to (body, declared Content-Length)."""
    files: dict[str, tuple[bytes, int]] = {}
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            if self.path not in files:
                self.send_error(404)
                return
            body, length = files[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()

    def serve(path: str, body: bytes, length: int | None = None) -> None:
        files[path] = (body, len(body) if length is None else length)

    yield SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_port}", serve=serve, requests=requests)
    httpd.shutdown()
    httpd.server_close()


def cached_files(tmp_path: Path) -> list[str]:
    folder = tmp_path / "cache" / "mnist"
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


# --- the IDX parser -----------------------------------------------------------------------------


@needs_shared
def test_official_test_files_match_md5sums_and_parse():
    sums = dict(reversed(line.split()) for line in (SHARED / "MD5SUMS").read_text().splitlines() if line)
    for name in TEST_FILES:
        assert md5((SHARED / name).read_bytes()) == sums[name] == data.MD5[name]
    images = data.read_idx(SHARED / TEST_FILES[0])
    labels = data.read_idx(str(SHARED / TEST_FILES[1]))
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,) and labels[0] == 7
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(0, 5), min_size=1, max_size=3),
    dtype=st.sampled_from(["u1", "i1", "i2", "i4", "f4", "f8"]),
    compress=st.booleans(),
)
def test_read_idx_round_trips(tmp_path_factory, shape, dtype, compress):
    rng = np.random.default_rng(len(shape))
    array = (rng.random(shape) * 100).astype(dtype)
    blob = idx_bytes(array)
    path = tmp_path_factory.mktemp("idx") / "a.idx"
    path.write_bytes(gzip.compress(blob) if compress else blob)
    out = data.read_idx(path)
    assert out.shape == array.shape and out.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"ab", "magic"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 2) + b"ab", "dtype code"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 2), "too short"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 3) + b"ab", "need 3 data bytes, found 2"),
        (b"\x00\x00\x08\x01" + struct.pack(">I", 1) + b"ab", "need 1 data bytes, found 2"),
        (gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 2) + b"ab", mtime=0)[:-6], "gzip"),
    ],
)
def test_read_idx_rejects_corrupt_files_naming_them(tmp_path, blob, message):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match=message) as error:
        data.read_idx(path)
    assert str(path) in str(error.value)


@needs_shared
@settings(max_examples=25, deadline=None)
@given(cut=st.integers(1, 10_000 + 8 - 1))
def test_read_idx_rejects_any_truncation(tmp_path_factory, cut):
    blob = gzip.decompress((SHARED / TEST_FILES[1]).read_bytes())
    path = tmp_path_factory.mktemp("cut") / "labels"
    path.write_bytes(blob[:cut])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        data.read_idx(path)


# --- source 1: $DAE_TUTOR_DATA ------------------------------------------------------------------


@needs_shared
def test_mnist_test_from_data_dir(monkeypatch, capsys):
    monkeypatch.setenv("DAE_TUTOR_DATA", str(SHARED))
    images, labels = data.mnist("test")
    assert images.shape == (10_000, 784) and images.dtype == torch.float32
    assert labels.shape == (10_000,) and labels.dtype == torch.int64 and labels[0] == 7
    assert images.min() == 0 and images.max() == 1
    raw = data.read_idx(SHARED / TEST_FILES[0]).reshape(10_000, 784)
    assert torch.equal(images, torch.from_numpy(raw).float() / 255)
    assert capsys.readouterr().out == ""  # no subset notice, no download


def test_data_dir_accepts_uncompressed_files_and_splits_train(monkeypatch, tmp_path):
    images_gz, labels_gz = mnist_like(10_030)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(gzip.decompress(images_gz))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(labels_gz)
    monkeypatch.setenv("DAE_TUTOR_DATA", str(tmp_path))
    train_x, train_y = data.mnist("train")
    valid_x, _ = data.mnist("valid")
    assert decode_index(train_x).tolist() == list(range(30))  # the first n - 10,000 images
    assert decode_index(valid_x).tolist() == list(range(30, 10_030))  # the last 10,000
    assert train_y.tolist() == [i % 10 for i in range(30)]


def test_training_file_too_small_for_a_validation_split(monkeypatch, tmp_path):
    for name, blob in zip(
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"), mnist_like(10_000), strict=True
    ):
        (tmp_path / name).write_bytes(blob)
    monkeypatch.setenv("DAE_TUTOR_DATA", str(tmp_path))
    with pytest.raises(ValueError, match="more than 10000"):
        data.mnist("valid")


@needs_shared
def test_data_dir_without_train_files_falls_through_to_the_subset(monkeypatch, capsys):
    monkeypatch.setenv("DAE_TUTOR_DATA", str(SHARED))
    images, _ = data.mnist("train")
    assert images.shape == (4000, 784)
    assert "NOT full MNIST" in capsys.readouterr().out


def test_nonexistent_data_dir_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DAE_TUTOR_DATA", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="DAE_TUTOR_DATA"):
        data.mnist("test")


def test_corrupt_file_in_data_dir_is_an_error_not_a_fallback(monkeypatch, tmp_path):
    images_gz, labels_gz = mnist_like(3)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(images_gz[:-20])
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(labels_gz)
    monkeypatch.setenv("DAE_TUTOR_DATA", str(tmp_path))
    with pytest.raises(ValueError, match=re.escape("t10k-images-idx3-ubyte.gz")):
        data.mnist("test")


# --- sources 2 and 3: the cache and verified downloads ------------------------------------------


@pytest.fixture
def test_set_payload():
    if not all((SHARED / name).is_file() for name in TEST_FILES):
        pytest.skip(f"official test set not in {SHARED}")
    return {name: (SHARED / name).read_bytes() for name in TEST_FILES}


def test_download_is_verified_cached_and_reused(monkeypatch, tmp_path, server, test_set_payload, capsys):
    for name, body in test_set_payload.items():
        server.serve(f"/good/{name}", body)
    monkeypatch.setenv("DAE_TUTOR_MNIST_MIRRORS", f"{server.url}/missing/, {server.url}/good")
    images, labels = data.mnist("test")
    assert images.shape == (10_000, 784) and labels[0] == 7
    assert len(server.requests) == 4  # each file: a 404, then the good mirror
    assert cached_files(tmp_path) == sorted(TEST_FILES)  # no temporary files left behind
    for name, body in test_set_payload.items():
        assert (tmp_path / "cache" / "mnist" / name).read_bytes() == body
    assert "NOT full MNIST" not in capsys.readouterr().out

    again, _ = data.mnist("test")
    assert len(server.requests) == 4  # served from the cache
    assert torch.equal(again, images)


def test_truncated_download_is_rejected_and_the_next_mirror_used(
    monkeypatch, tmp_path, server, test_set_payload
):
    for name, body in test_set_payload.items():
        server.serve(f"/short/{name}", body[: len(body) // 2])
        server.serve(f"/good/{name}", body)
    monkeypatch.setenv("DAE_TUTOR_MNIST_MIRRORS", f"{server.url}/short/ {server.url}/good/")
    _, labels = data.mnist("test")
    assert labels.shape == (10_000,)
    assert [path.split("/")[1] for path in server.requests] == ["short", "good", "short", "good"]
    for name, body in test_set_payload.items():
        assert md5((tmp_path / "cache" / "mnist" / name).read_bytes()) == md5(body)


@pytest.mark.parametrize("fault", ["corrupt", "cut-connection", "truncated"])
def test_bad_downloads_are_never_cached(monkeypatch, tmp_path, server, test_set_payload, capsys, fault):
    name = TEST_FILES[0]
    body = test_set_payload[name]
    if fault == "corrupt":
        server.serve(f"/{fault}/{name}", body[:1000] + bytes([body[1000] ^ 0xFF]) + body[1001:])
    elif fault == "cut-connection":  # the server promises more bytes than it sends
        server.serve(f"/{fault}/{name}", body[:5000], length=len(body))
    else:
        server.serve(f"/{fault}/{name}", body[:-1])
    monkeypatch.setenv("DAE_TUTOR_MNIST_MIRRORS", f"{server.url}/{fault}/")
    images, _ = data.mnist("test")
    out = capsys.readouterr().out
    assert images.shape == (500, 784)  # the bundled subset
    assert "NOT full MNIST" in out and f"could not download {name}" in out
    expected = "IncompleteRead" if fault == "cut-connection" else "wrong MD5"
    assert expected in out
    assert cached_files(tmp_path) == []


def test_corrupt_cache_entry_is_replaced(monkeypatch, tmp_path, server, test_set_payload):
    for name, body in test_set_payload.items():
        server.serve(f"/good/{name}", body)
    stale = tmp_path / "cache" / "mnist" / TEST_FILES[1]
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"not the labels")
    monkeypatch.setenv("DAE_TUTOR_MNIST_MIRRORS", f"{server.url}/good/")
    with pytest.warns(UserWarning, match="MD5"):
        _, labels = data.mnist("test")
    assert labels[0] == 7
    assert stale.read_bytes() == test_set_payload[TEST_FILES[1]]


def test_downloaded_training_file_gives_train_and_valid(monkeypatch, tmp_path, server):
    for name, body in zip(
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"), mnist_like(10_005), strict=True
    ):
        server.serve(f"/m/{name}", body)
        monkeypatch.setitem(data.MD5, name, md5(body))
    monkeypatch.setenv("DAE_TUTOR_MNIST_MIRRORS", f"{server.url}/m/")
    train_x, _ = data.mnist("train")
    valid_x, _ = data.mnist("valid")
    assert len(server.requests) == 2
    assert decode_index(train_x).tolist() == list(range(5))
    assert decode_index(valid_x).tolist() == list(range(5, 10_005))


# --- source 4: the bundled subset ---------------------------------------------------------------


def test_bundled_subset_with_its_notice(capsys):
    parts = {split: data.mnist(split) for split in data.SPLITS}
    out = capsys.readouterr().out
    assert out.count("NOT full MNIST") == 3 and "4,000 'train' images of its 5,000" in out
    for split, per_class in [("train", 400), ("valid", 50), ("test", 50)]:
        images, labels = parts[split]
        assert images.dtype == torch.float32 and labels.dtype == torch.int64
        assert images.shape == (10 * per_class, 784) and 0 <= images.min() and images.max() <= 1
        assert torch.bincount(labels, minlength=10).tolist() == [per_class] * 10
    rows = {
        split: {bytes(row) for row in (images * 255).round().byte().numpy()}
        for split, (images, _) in parts.items()
    }
    assert sum(map(len, rows.values())) == 5000  # distinct digits...
    assert not (rows["train"] & rows["valid"] or rows["train"] & rows["test"] or rows["valid"] & rows["test"])
    again, _ = data.mnist("valid")
    assert torch.equal(again, parts["valid"][0])  # ...and a deterministic split


def test_bundled_files_match_the_checksums_in_the_readme():
    readme = (data.BUNDLED_DIR / "README.md").read_text()
    for name in ("mnist_5k-images-idx3-ubyte.gz", "mnist_5k-labels-idx1-ubyte.gz"):
        digest = hashlib.sha256((data.BUNDLED_DIR / name).read_bytes()).hexdigest()
        assert re.search(rf"{re.escape(name)}.*{digest}", readme), f"README.md lacks the SHA-256 of {name}"


def test_missing_subset_explains_how_to_get_mnist(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "BUNDLED_DIR", tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="DAE_TUTOR_DATA"):
        data.mnist("train")


# --- SVHN ---------------------------------------------------------------------------------------


def flatten_by_index(x: np.ndarray) -> np.ndarray:
    """(32, 32, 3, n) uint8 -> (n, 3072) float32 / 255; (row r, col c, channel k) at k*1024 + r*32 + c."""
    out = np.empty((x.shape[3], 3072), dtype=np.float32)
    r, c, k = np.meshgrid(np.arange(32), np.arange(32), np.arange(3), indexing="ij")
    out[:, (k * 1024 + r * 32 + c).ravel()] = x.reshape(-1, x.shape[3]).T
    return out / 255


@pytest.fixture
def svhn_dir(monkeypatch, tmp_path, svhn_mat):
    """$DAE_TUTOR_DATA with synthetic train (6,010 images), test (7) and extra (5) files."""
    folder = tmp_path / "svhn-data"
    folder.mkdir()
    files = {
        "train": svhn_mat(folder / "train_32x32.mat", 6_010, seed=1, label_dtype=np.float64),
        "test": svhn_mat(folder / "test_32x32.mat", 7, seed=2),
        "extra": svhn_mat(folder / "extra_32x32.mat", 5, seed=3),
    }
    monkeypatch.setenv("DAE_TUTOR_DATA", str(folder))
    return files


def test_svhn_from_data_dir_shapes_range_labels_and_pixel_order(svhn_dir):
    x, y = svhn_dir["test"]
    images, labels = data.svhn("test")
    assert images.shape == (7, 3072) and images.dtype == torch.float32
    assert labels.shape == (7,) and labels.dtype == torch.int64
    assert 0 <= images.min() and images.max() <= 1
    np.testing.assert_array_equal(labels.numpy(), np.where(y[:, 0] == 10, 0, y[:, 0]))
    assert labels[:3].tolist() == [0, 0, 0] and set(labels.tolist()) <= set(range(10))
    np.testing.assert_array_equal(images.numpy(), flatten_by_index(x))
    # the documented inverse: view(n, 3, 32, 32) is (channel, row, column)
    np.testing.assert_array_equal((images.view(7, 3, 32, 32)[4, 2, 5, 9] * 255).round().item(), x[5, 9, 2, 4])


def test_svhn_valid_is_the_last_6000_training_images_and_extra_is_appended(svhn_dir):
    x, y = svhn_dir["train"]
    flat = flatten_by_index(x)
    train_x, train_y = data.svhn("train")
    valid_x, _ = data.svhn("valid")
    assert train_x.shape == (10, 3072) and valid_x.shape == (6_000, 3072)
    np.testing.assert_array_equal(train_x.numpy(), flat[:10])
    np.testing.assert_array_equal(valid_x.numpy(), flat[10:])
    np.testing.assert_array_equal(train_y.numpy(), y[:10, 0] % 10)
    both_x, both_y = data.svhn("train", extra=True)
    ex, ey = svhn_dir["extra"]
    np.testing.assert_array_equal(both_x.numpy(), np.concatenate([flat[:10], flatten_by_index(ex)]))
    np.testing.assert_array_equal(both_y.numpy(), np.concatenate([y[:10, 0], ey[:, 0]]) % 10)


def test_svhn_download_is_verified_cached_and_reused(monkeypatch, tmp_path, server, svhn_mat):
    x, _ = svhn_mat(tmp_path / "served.mat", 4)
    body = (tmp_path / "served.mat").read_bytes()
    server.serve("/svhn/test_32x32.mat", body)
    monkeypatch.setitem(data.SVHN_MD5, "test_32x32.mat", md5(body))
    monkeypatch.setenv("DAE_TUTOR_SVHN_MIRRORS", f"{server.url}/svhn")
    images, _ = data.svhn("test")
    np.testing.assert_array_equal(images.numpy(), flatten_by_index(x))
    assert (tmp_path / "cache" / "svhn" / "test_32x32.mat").read_bytes() == body
    again, _ = data.svhn("test")
    assert len(server.requests) == 1 and torch.equal(again, images)  # the second read is the cache's


def test_svhn_corrupt_download_is_not_cached(monkeypatch, tmp_path, server):
    server.serve("/svhn/test_32x32.mat", b"not the official file")
    monkeypatch.setenv("DAE_TUTOR_SVHN_MIRRORS", f"{server.url}/svhn/")
    with pytest.raises(FileNotFoundError, match="wrong MD5"):
        data.svhn("test")
    assert not (tmp_path / "cache" / "svhn" / "test_32x32.mat").exists()


def test_svhn_corrupt_cache_entry_fails_its_md5_and_is_deleted(tmp_path):
    stale = tmp_path / "cache" / "svhn" / "test_32x32.mat"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"a truncated download")
    with pytest.warns(UserWarning, match="MD5"), pytest.raises(FileNotFoundError):
        data.svhn("test")
    assert not stale.exists()


def test_svhn_data_dir_without_the_file_falls_through_to_the_cache(monkeypatch, tmp_path, svhn_mat):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("DAE_TUTOR_DATA", str(tmp_path / "empty"))
    cached = tmp_path / "cache" / "svhn" / "test_32x32.mat"
    cached.parent.mkdir(parents=True)
    _, y = svhn_mat(cached, 3)
    monkeypatch.setitem(data.SVHN_MD5, "test_32x32.mat", md5(cached.read_bytes()))
    _, labels = data.svhn("test")
    assert labels.tolist() == (y[:, 0] % 10).tolist()


def test_svhn_without_any_source_says_how_to_get_the_files():
    with pytest.raises(FileNotFoundError) as error:
        data.svhn("valid")
    message = str(error.value)
    for part in (
        "http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
        data.SVHN_MD5["train_32x32.mat"],
        "DAE_TUTOR_DATA",
        "DAE_TUTOR_SVHN_MIRRORS is empty",
    ):
        assert part in message


def test_svhn_missing_extra_file_is_reported(svhn_dir):
    (Path(os.environ["DAE_TUTOR_DATA"]) / "extra_32x32.mat").unlink()  # the folder svhn_dir made
    with pytest.raises(FileNotFoundError, match=r"extra_32x32\.mat"):
        data.svhn("train", extra=True)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"garbage, not MATLAB", "not a readable MATLAB file"),
        # the 128-byte header of a MATLAB v7.3 (HDF5) file: version 0x0200, endian "IM"
        (b"MATLAB 7.3 MAT-file".ljust(116) + bytes(8) + b"\x00\x02IM" + bytes(384), "v7.3"),
        ({"X": np.zeros((28, 28, 1, 2), np.uint8), "y": np.ones((2, 1))}, r"shape \(32, 32, 3, n\)"),
        ({"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.ones((3, 1))}, "expected 2 labels"),
        ({"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.zeros((2, 1))}, "1..10"),
    ],
)
def test_svhn_bad_file_in_data_dir_is_an_error_naming_it(monkeypatch, tmp_path, content, message):
    path = tmp_path / "test_32x32.mat"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        scipy.io.savemat(path, content)
    monkeypatch.setenv("DAE_TUTOR_DATA", str(tmp_path))
    with pytest.raises(ValueError, match=message) as error:
        data.svhn("test")
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"split": "extra"}, ValueError, "split"),
        ({"split": 1}, TypeError, "split"),
        ({"split": "test", "extra": True}, ValueError, "extra"),
        ({"extra": 1}, TypeError, "extra"),
    ],
)
def test_svhn_bad_arguments_are_named(kwargs, error, name):
    with pytest.raises(error, match=name):
        data.svhn(**kwargs)


# --- binarization -------------------------------------------------------------------------------


def test_threshold_binarization_is_exact():
    x = torch.tensor([0.0, 0.25, 0.5, 0.5001, 1.0], dtype=torch.float64)
    out = data.binarize(x, "threshold")
    assert out.dtype == torch.float64 and out.tolist() == [0, 0, 0, 1, 1]
    images, _ = data.mnist("valid", binarize="threshold")
    grey, _ = data.mnist("valid")
    assert torch.equal(images, (grey > 0.5).float())


def test_stochastic_binarization_mean_within_clt_bounds():
    p = torch.linspace(0, 1, 11)
    n = 20_000
    draws = data.binarize(p.expand(n, -1), "stochastic", torch.Generator().manual_seed(0))
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    bound = 5 * torch.sqrt(p * (1 - p) / n)
    assert bool(((draws.mean(0) - p).abs() <= bound).all())


def test_stochastic_binarization_is_seeded():
    def draw(seed):
        return data.mnist("test", binarize="stochastic", generator=torch.Generator().manual_seed(seed))[0]

    first, second, other = draw(1), draw(1), draw(2)
    assert torch.equal(first, second) and not torch.equal(first, other)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: data.mnist("training"), ValueError, "split"),
        (lambda: data.mnist(0), TypeError, "split"),
        (lambda: data.mnist("test", binarize="bernoulli"), ValueError, "binarize"),
        (lambda: data.mnist("test", binarize=True), TypeError, "binarize"),
        (lambda: data.mnist("test", generator=0), TypeError, "generator"),
        (lambda: data.binarize(torch.ones(3, dtype=torch.uint8), "threshold"), TypeError, "x"),
        (lambda: data.binarize([0.5], "threshold"), TypeError, "x"),
        (lambda: data.binarize(torch.tensor([1.5]), "threshold"), ValueError, "x must lie in"),
        (lambda: data.binarize(torch.tensor([0.5]), "round"), ValueError, "mode"),
        (lambda: data.binarize(torch.tensor([0.5]), "stochastic", 3), TypeError, "generator"),
        (lambda: data.read_idx(42), TypeError, "path"),
    ],
)
def test_bad_arguments_are_named(call, error, name):
    with pytest.raises(error, match=name):
        call()


def test_bad_mirror_setting_is_named(monkeypatch):
    monkeypatch.setenv("DAE_TUTOR_MNIST_MIRRORS", "ftp.example.org/mnist")
    with pytest.raises(ValueError, match="DAE_TUTOR_MNIST_MIRRORS"):
        data.mnist("test")


@given(split=st.text(max_size=12).filter(lambda s: s not in data.SPLITS))
def test_any_unknown_split_is_rejected(split):
    with pytest.raises(ValueError, match="split"):
        data.mnist(split)


# binary_digits --------------------------------------------------------------------------------------
def test_binary_digits_8x8_is_a_split_of_thresholded_sklearn_digits() -> None:
    from sklearn.datasets import load_digits

    raw = load_digits()
    splits, labels, side = data.binary_digits("digits8x8")
    assert side == 8 and {k: len(v) for k, v in splits.items()} == {"train": 1200, "valid": 300, "test": 297}
    # independent truth: every image (with its label) is one of scikit-learn's, thresholded at 8/16
    expected = {(tuple((row > 8).astype(int)), int(y)) for row, y in zip(raw.data, raw.target, strict=True)}
    train = splits["train"]
    assert train.dtype == torch.float32 and set(train.unique().tolist()) <= {0.0, 1.0}
    got = {(tuple(int(v) for v in row), int(y)) for row, y in zip(train, labels, strict=True)}
    assert got <= expected
    # the three splits are a permutation of all 1,797 images
    everything = torch.cat([splits["train"], splits["valid"], splits["test"]])
    assert sorted(map(tuple, everything.int().tolist())) == sorted(
        map(tuple, (raw.data > 8).astype(int).tolist())
    )


def test_binary_digits_rejects_an_unknown_name() -> None:
    with pytest.raises(ValueError, match="name"):
        data.binary_digits("cifar")
