"""models.data: IDX parsing, validation and every error path, on small files written here."""

from __future__ import annotations

import gzip
import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

import models.data as md
from models.data import (DatasetError, DatasetNotFoundError, fashion_mnist, images_to_float,
                         read_idx, read_images, read_labels, split_train_validation)

N_TRAIN, N_TEST = 12, 5
STEMS = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
         "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


# ---- independent IDX writer (struct + gzip; not the code under test) ---------------------------
def idx_bytes(arr: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.astype(">u1" if type_code == 0x08 else arr.dtype).tobytes()


def write(path: Path, payload: bytes, gz: bool = True) -> Path:
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def make_arrays(seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, N_TRAIN, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, N_TEST, dtype=np.uint8),
    }


def make_dir(d: Path, arrays: dict[str, np.ndarray] | None = None, gz: bool = True) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    arrays = arrays or make_arrays()
    for key, stem in STEMS.items():
        write(d / (stem + (".gz" if gz else "")), idx_bytes(arrays[key]), gz)
    return d


def load(d: Path):
    return fashion_mnist(d, train_count=N_TRAIN, test_count=N_TEST)


# ---- parsing -------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
def test_round_trip(tmp_path, gz):
    arrays = make_arrays()
    data = load(make_dir(tmp_path, arrays, gz))
    for key in STEMS:
        t = getattr(data, key)
        assert np.array_equal(t.numpy(), arrays[key])
    assert data.train_images.dtype == torch.uint8 and data.train_labels.dtype == torch.int64
    assert data.source == str(tmp_path)
    assert len(data.classes) == 10


def test_returns_fresh_tensors(tmp_path):
    d = make_dir(tmp_path)
    a = load(d)
    a.train_images.zero_()
    b = load(d)
    assert b.train_images.any()  # the cache is not shared with callers


def test_multibyte_idx_types(tmp_path):
    arr = np.arange(-6, 6, dtype=np.int32).reshape(3, 4) * 1000003
    p = write(tmp_path / "x.gz", idx_bytes(arr.astype(">i4"), 0x0C))
    got = read_idx(p)
    assert got.dtype == np.int32 and np.array_equal(got, arr)
    f = np.array([1.5, -2.25, 1e30], dtype=">f8")
    assert np.array_equal(read_idx(write(tmp_path / "f", idx_bytes(f, 0x0E), gz=False)), f)


# ---- every error names the file and says how to get the data ------------------------------
def assert_error(exc_info, path: Path, *words: str):
    msg = str(exc_info.value)
    assert str(path) in msg, msg
    assert "apt-get install dataset-fashion-mnist" in msg, msg
    for w in words:
        assert w in msg, msg


def test_missing_file(tmp_path):
    d = make_dir(tmp_path)
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError) as e:
        load(d)
    assert_error(e, d / "t10k-labels-idx1-ubyte.gz", "missing")


def test_named_directory_without_data(tmp_path):
    with pytest.raises(DatasetNotFoundError) as e:
        fashion_mnist(tmp_path)
    assert_error(e, tmp_path, "none of the Fashion-MNIST files")
    with pytest.raises(DatasetNotFoundError) as e:
        fashion_mnist(tmp_path / "nope")
    assert_error(e, tmp_path / "nope", "no such directory")


def test_truncated_gzip(tmp_path):
    d = make_dir(tmp_path)
    p = d / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(DatasetError) as e:
        load(d)
    assert_error(e, p, "truncated")


def test_gzip_crc_mismatch(tmp_path):
    d = make_dir(tmp_path)
    p = d / "train-labels-idx1-ubyte.gz"
    raw = bytearray(p.read_bytes())
    raw[-8] ^= 0xFF  # the CRC-32 trailer
    p.write_bytes(bytes(raw))
    with pytest.raises(DatasetError) as e:
        load(d)
    assert_error(e, p, "corrupt")


def test_corrupt_deflate_stream(tmp_path):
    d = make_dir(tmp_path)
    p = d / "train-images-idx3-ubyte.gz"
    raw = bytearray(p.read_bytes())
    for i in range(20, 60):
        raw[i] ^= 0x5A
    p.write_bytes(bytes(raw))
    with pytest.raises(DatasetError) as e:
        load(d)
    assert_error(e, p)


def test_gz_name_without_gzip_data(tmp_path):
    p = write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(np.zeros(3, np.uint8)), gz=False)
    with pytest.raises(DatasetError) as e:
        read_labels(p)
    assert_error(e, p, "not gzip")


@pytest.mark.parametrize("magic", [b"\x12\x34\x08\x03", b"\x00\x00\x07\x03", b"\x00\x00\x08\x00"])
def test_bad_magic(tmp_path, magic):
    body = idx_bytes(np.zeros((2, 28, 28), np.uint8))
    p = write(tmp_path / "img.gz", magic + body[4:])
    with pytest.raises(DatasetError) as e:
        read_images(p)
    assert_error(e, p, "magic")


def test_short_header(tmp_path):
    p = write(tmp_path / "a.gz", b"\x00\x00")
    with pytest.raises(DatasetError) as e:
        read_idx(p)
    assert_error(e, p, "too short")
    p = write(tmp_path / "b.gz", b"\x00\x00\x08\x03" + struct.pack(">I", 2))
    with pytest.raises(DatasetError) as e:
        read_idx(p)
    assert_error(e, p, "truncated IDX header")


def test_truncated_payload_and_trailing_bytes(tmp_path):
    body = idx_bytes(np.zeros((3, 28, 28), np.uint8))
    p = write(tmp_path / "short.gz", body[:-1])
    with pytest.raises(DatasetError) as e:
        read_images(p)
    assert_error(e, p, "truncated")
    p = write(tmp_path / "long.gz", body + b"\x00\x00")
    with pytest.raises(DatasetError) as e:
        read_images(p)
    assert_error(e, p, "2 trailing bytes")


def test_wrong_type_rank_and_dims(tmp_path):
    p = write(tmp_path / "signed.gz", idx_bytes(np.zeros((2, 28, 28), ">i4"), 0x0C))
    with pytest.raises(DatasetError) as e:
        read_images(p)
    assert_error(e, p, "unsigned byte")
    p = write(tmp_path / "rank.gz", idx_bytes(np.zeros((2, 28, 28), np.uint8)))
    with pytest.raises(DatasetError) as e:
        read_labels(p)
    assert_error(e, p, "rank 1")
    p = write(tmp_path / "dims.gz", idx_bytes(np.zeros((2, 27, 28), np.uint8)))
    with pytest.raises(DatasetError) as e:
        read_images(p)
    assert_error(e, p, "27x28")


def test_count_mismatch(tmp_path):
    arrays = make_arrays()
    arrays["test_images"] = arrays["test_images"][:4]
    d = make_dir(tmp_path, arrays)
    with pytest.raises(DatasetError) as e:
        load(d)
    assert_error(e, d / "t10k-images-idx3-ubyte.gz", "has 4 images, expected 5")
    # and the real dataset's counts are the default
    with pytest.raises(DatasetError) as e:
        fashion_mnist(make_dir(tmp_path / "real_counts"))
    assert "expected 60000" in str(e.value)


def test_label_out_of_range(tmp_path):
    arrays = make_arrays()
    arrays["train_labels"][7] = 10
    d = make_dir(tmp_path, arrays)
    with pytest.raises(DatasetError) as e:
        load(d)
    assert_error(e, d / "train-labels-idx1-ubyte.gz", "outside 0..9", "index 7")


# ---- where the data is looked for ----------------------------------------------------------
def test_env_var_and_precedence(tmp_path, monkeypatch):
    a = make_dir(tmp_path / "a", make_arrays(1))
    b = make_dir(tmp_path / "b", make_arrays(2))
    monkeypatch.setenv("FASHION_MNIST_DIR", str(a))
    assert fashion_mnist(train_count=N_TRAIN, test_count=N_TEST).source == str(a)
    assert load(b).source == str(b)  # the caller's directory wins
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path / "empty"))
    with pytest.raises(DatasetNotFoundError, match="FASHION_MNIST_DIR"):
        fashion_mnist(train_count=N_TRAIN, test_count=N_TEST)


def test_default_search_order(tmp_path, monkeypatch):
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    monkeypatch.setattr(md, "DEBIAN_DIR", tmp_path / "debian")
    tv = tmp_path / "tv"
    with pytest.raises(DatasetNotFoundError) as e:
        fashion_mnist(torchvision_root=tv, train_count=N_TRAIN, test_count=N_TEST)
    assert str(tmp_path / "debian") in str(e.value) and "download=True" in str(e.value)
    make_dir(tv / "FashionMNIST" / "raw", gz=False)  # torchvision's layout: raw files
    got = fashion_mnist(torchvision_root=tv, train_count=N_TRAIN, test_count=N_TEST)
    assert got.source == str(tv / "FashionMNIST" / "raw")
    make_dir(tmp_path / "debian", make_arrays(3))
    got = fashion_mnist(torchvision_root=tv, train_count=N_TRAIN, test_count=N_TEST)
    assert got.source == str(tmp_path / "debian")


def test_export_is_read_back_by_torchvision(tmp_path):
    import torchvision

    data = load(make_dir(tmp_path / "src"))
    md.export_torchvision_layout(data, tmp_path / "tv")
    tv = torchvision.datasets.FashionMNIST(str(tmp_path / "tv"), train=True)
    assert torch.equal(tv.data, data.train_images) and torch.equal(tv.targets, data.train_labels)
    tv = torchvision.datasets.FashionMNIST(str(tmp_path / "tv"), train=False)
    assert torch.equal(tv.data, data.test_images)


# ---- split and features --------------------------------------------------------------------
def test_split_is_seeded_disjoint_and_documented(tmp_path):
    data = load(make_dir(tmp_path))
    s = split_train_validation(data, validation_size=4, seed=7)
    # the documented definition
    perm = torch.randperm(N_TRAIN, generator=torch.Generator().manual_seed(7))
    assert s.val_indices.tolist() == sorted(perm[:4].tolist())
    assert sorted(s.train_indices.tolist() + s.val_indices.tolist()) == list(range(N_TRAIN))
    assert torch.equal(s.train_images, data.train_images[s.train_indices])
    assert torch.equal(s.val_labels, data.train_labels[s.val_indices])
    assert torch.equal(s.test_images, data.test_images)
    again = split_train_validation(data, validation_size=4, seed=7)
    assert again.fingerprint() == s.fingerprint()
    other = split_train_validation(data, validation_size=4, seed=8)
    assert other.fingerprint() != s.fingerprint()
    with pytest.raises(ValueError, match="validation_size"):
        split_train_validation(data, validation_size=N_TRAIN)


def test_images_to_float_is_correctly_rounded():
    imgs = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    for dtype, np_dtype in ((torch.float32, np.float32), (torch.float64, np.float64)):
        got = images_to_float(imgs, dtype)[0].numpy()
        assert got.dtype == np_dtype and got.shape == (256,)
        for k in range(256):
            v, exact = got[k], Fraction(k, 255)
            err = abs(Fraction(float(v)) - exact)
            for nb in (np.nextafter(v, np_dtype(-1)), np.nextafter(v, np_dtype(2))):
                assert err <= abs(Fraction(float(nb)) - exact), (dtype, k)  # nearest value
    with pytest.raises(ValueError, match="NaN"):
        images_to_float(torch.tensor([[float("nan")]]))
    with pytest.raises(TypeError):
        images_to_float(torch.zeros(2, 3, dtype=torch.int32))


def test_header_whose_element_count_wraps_int64_is_refused(tmp_path):
    """2**21 x 2**21 x 2**22 is 2**64 elements: an int64 product would wrap to 0 bytes."""
    d = make_dir(tmp_path)
    p = write(d / "train-images-idx3-ubyte.gz", struct.pack(">HBBIII", 0, 8, 3, 2**21, 2**21,
                                                            2**22))
    with pytest.raises(DatasetError) as e:
        load(d)
    assert_error(e, p, "truncated")


def test_image_and_label_counts_must_match_without_expected_counts(tmp_path):
    arrays = make_arrays()
    arrays["train_labels"] = arrays["train_labels"][:7]
    d = make_dir(tmp_path, arrays)
    with pytest.raises(DatasetError) as e:
        fashion_mnist(d, train_count=None, test_count=None)
    assert_error(e, d / "train-labels-idx1-ubyte.gz", f"7 labels for {N_TRAIN} images")


@pytest.mark.parametrize("kw", [{"train_count": -1}, {"test_count": 0}, {"train_count": 2.5},
                                {"train_count": True}])
def test_bad_counts_are_argument_errors_not_corrupt_files(tmp_path, kw):
    # checked before any file is looked at: a directory that does not exist is not reported
    with pytest.raises(ValueError, match=next(iter(kw))) as e:
        fashion_mnist(tmp_path / "nowhere", **kw)
    assert not isinstance(e.value, DatasetError)
