"""Fashion-MNIST, read and validated from IDX files, and a seeded train/validation split.

Where the data comes from, first match wins:

1. ``data_dir`` (the caller's directory), then
2. the ``FASHION_MNIST_DIR`` environment variable -- both explicit: if named, the data must be
   there, and a directory without it is an error rather than a silent fall-through;
3. Debian's ``/usr/share/datasets/fashion-mnist/`` (package ``dataset-fashion-mnist``);
4. torchvision's layout under ``torchvision_root`` (default `default_torchvision_root`):
   ``<root>/FashionMNIST/raw/``;
5. only with ``download=True``: torchvision's downloader (checks its published MD5s) into (4).

A directory holds the four files ``{train,t10k}-{images-idx3,labels-idx1}-ubyte``, each either
gzip-compressed (``.gz``) or raw. Every file is validated before a single value is used: gzip
stream integrity (CRC-32 and length, truncation), IDX magic (two zero bytes, type 0x08 =
unsigned byte, the expected rank), dimensions (28x28 images), counts (60000 train, 10000 test)
and exact payload length, labels in 0..9, matching image and label counts. Anything wrong raises
`DatasetError` (or `DatasetNotFoundError`) naming the file, what is wrong and how to get the data.

The IDX parser is our own: torchvision's ``read_sn3_pascalvincent_tensor`` reads raw files only
and checks with ``assert``; torchvision is used for what it does well: the download with its
checksums, and the textbook ``FashionMNIST`` dataset (`export_torchvision_layout`).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "CLASSES", "FILES", "DEBIAN_DIR", "ENV_VAR", "TRAIN_COUNT", "TEST_COUNT", "IMAGE_SHAPE",
    "DatasetError", "DatasetNotFoundError", "FashionMNIST", "Split", "HOW_TO_GET",
    "fashion_mnist", "load_split", "split_train_validation", "read_idx", "read_images",
    "read_labels", "default_torchvision_root", "export_torchvision_layout", "images_to_float",
]

CLASSES: tuple[str, ...] = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                            "Shirt", "Sneaker", "Bag", "Ankle boot")
FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "FASHION_MNIST_DIR"
TRAIN_COUNT = 60000
TEST_COUNT = 10000
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = len(CLASSES)

HOW_TO_GET = (
    "To get Fashion-MNIST: `apt-get install dataset-fashion-mnist` (Debian/Ubuntu, installs "
    f"{DEBIAN_DIR}/); or put the four files {', '.join(f + '.gz' for f in FILES.values())} in a "
    f"directory and pass it as data_dir= (CLI: --data-dir) or set {ENV_VAR}; or, online, pass "
    "download=True (CLI: --download) to fetch them with torchvision."
)

_IDX_UBYTE = 0x08
_IDX_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "short", 0x0C: "int",
              0x0D: "float", 0x0E: "double"}
_GZIP_MAGIC = b"\x1f\x8b"


class DatasetError(ValueError):
    """A dataset file exists but is unreadable or not what it should be."""


class DatasetNotFoundError(FileNotFoundError):
    """No complete copy of the dataset was found where we looked."""


def _fail(path: Path | str, what: str) -> DatasetError:
    return DatasetError(f"{path}: {what}. The file is corrupt or not Fashion-MNIST; replace it. "
                        f"{HOW_TO_GET}")


# ---- IDX files ---------------------------------------------------------------------------------
def _read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped if it is gzip (by magic bytes), with integrity checked."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetNotFoundError(f"{path}: no such file. {HOW_TO_GET}") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror or exc}). "
                           f"{HOW_TO_GET}") from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            # gzip checks each member's CRC-32 and length; truncation raises EOFError.
            return gzip.decompress(raw)
        except EOFError:
            raise _fail(path, "gzip stream is truncated (the file ends before the "
                              "end-of-stream marker; an interrupted copy or download?)") from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise _fail(path, f"gzip stream is corrupt ({exc})") from None
    if path.suffix == ".gz":
        raise _fail(path, f"named .gz but is not gzip data (starts with {raw[:4].hex()!r}, "
                          "a gzip file starts with '1f8b')")
    return raw


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an IDX file (raw or gzip) into a numpy array of its dtype and dimensions.

    Checks: gzip integrity, the magic number (two zero bytes, a known type code, rank >= 1),
    that the header is complete and that the payload is exactly prod(dims) elements (a short
    file is 'truncated', a long one has 'trailing bytes'). Big-endian multi-byte types are
    returned in native byte order. Raises `DatasetError` naming the file.
    """
    p = Path(path)
    data = _read_bytes(p)
    if len(data) < 4:
        raise _fail(p, f"only {len(data)} bytes: too short for an IDX header (magic is 4 bytes)")
    zero, type_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or type_code not in _IDX_TYPES or ndim == 0:
        raise _fail(p, f"bad IDX magic {data[:4].hex()} (expected 0000 then a type code such as "
                       f"08 for unsigned bytes, then the rank, e.g. 00000803 for images)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise _fail(p, f"truncated IDX header: rank {ndim} needs {header} bytes, file has "
                       f"{len(data)}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype({0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
                      0x0E: ">f8"}[type_code])
    expected = math.prod(dims) * dtype.itemsize       # Python ints: np.prod could wrap
    have = len(data) - header
    if have < expected:
        raise _fail(p, f"truncated: header promises {' x '.join(map(str, dims))} "
                       f"{_IDX_TYPES[type_code]} values ({expected} bytes), file has {have}")
    if have > expected:
        raise _fail(p, f"{have - expected} trailing bytes after the {' x '.join(map(str, dims))} "
                       "values the header promises")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=False)


def _check_ubyte(arr: np.ndarray, path: Path, rank: int, what: str) -> None:
    if arr.dtype != np.uint8:
        raise _fail(path, f"{what} must be IDX type 0x08 (unsigned byte), got {arr.dtype}")
    if arr.ndim != rank:
        raise _fail(path, f"{what} must have rank {rank}, got shape {arr.shape}")


def read_images(path: str | os.PathLike, count: int | None = None) -> torch.Tensor:
    """Images of an IDX3 file as a uint8 tensor (N, 28, 28); N must equal ``count`` if given."""
    p = Path(path)
    arr = read_idx(p)
    _check_ubyte(arr, p, 3, "an image file")
    if arr.shape[1:] != IMAGE_SHAPE:
        raise _fail(p, f"images are {arr.shape[1]}x{arr.shape[2]}, Fashion-MNIST's are 28x28")
    if count is not None and arr.shape[0] != count:
        raise _fail(p, f"has {arr.shape[0]} images, expected {count}")
    return torch.from_numpy(arr.copy())


def read_labels(path: str | os.PathLike, count: int | None = None) -> torch.Tensor:
    """Labels of an IDX1 file as an int64 tensor (N,), each in 0..9; N == ``count`` if given."""
    p = Path(path)
    arr = read_idx(p)
    _check_ubyte(arr, p, 1, "a label file")
    if count is not None and arr.shape[0] != count:
        raise _fail(p, f"has {arr.shape[0]} labels, expected {count}")
    bad = np.flatnonzero(arr >= NUM_CLASSES)
    if bad.size:
        raise _fail(p, f"{bad.size} labels outside 0..{NUM_CLASSES - 1} (first: label "
                       f"{int(arr[bad[0]])} at index {int(bad[0])})")
    return torch.from_numpy(arr.astype(np.int64))


# ---- the dataset -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FashionMNIST:
    """The whole dataset in memory: uint8 images (N, 28, 28), int64 labels (N,) in 0..9."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str  # the directory the four files were read from

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names, label order (`CLASSES`)."""
        return CLASSES


def _find_file(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def _has_any(directory: Path) -> bool:
    return any(_find_file(directory, s) is not None for s in FILES.values())


def _file_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=2)
def _load_cached(keys: tuple[tuple[str, int, int], ...], train_count: int,
                 test_count: int) -> tuple[torch.Tensor, ...]:
    paths = [Path(k[0]) for k in keys]
    tri = read_images(paths[0], train_count)
    trl = read_labels(paths[1], train_count)
    tei = read_images(paths[2], test_count)
    tel = read_labels(paths[3], test_count)
    for images, labels, path in ((tri, trl, paths[1]), (tei, tel, paths[3])):
        if images.shape[0] != labels.shape[0]:
            raise _fail(path, f"has {labels.shape[0]} labels for {images.shape[0]} images")
    return tri, trl, tei, tel


def _load_dir(directory: Path, train_count: int, test_count: int) -> FashionMNIST:
    paths = {}
    for key, stem in FILES.items():
        p = _find_file(directory, stem)
        if p is None:
            raise DatasetNotFoundError(
                f"{directory / (stem + '.gz')}: missing (neither {stem}.gz nor {stem} is in "
                f"{directory}; the other Fashion-MNIST files are there). {HOW_TO_GET}")
        paths[key] = p
    keys = tuple(_file_key(paths[k]) for k in FILES)
    # Cached by path, size and mtime (loading takes ~0.5 s); callers get their own copies.
    tensors = _load_cached(keys, train_count, test_count)
    return FashionMNIST(*(t.clone() for t in tensors), source=str(directory))


def default_torchvision_root() -> Path:
    """Where torchvision's copy lives: ``$TORCH_HOME/datasets`` (default ~/.cache/torch/datasets);
    the files themselves are under ``<root>/FashionMNIST/raw/`` as torchvision lays them out."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch")
    return Path(torch_home) / "datasets"


def fashion_mnist(data_dir: str | os.PathLike | None = None, *, download: bool = False,
                  torchvision_root: str | os.PathLike | None = None,
                  train_count: int | None = TRAIN_COUNT,
                  test_count: int | None = TEST_COUNT) -> FashionMNIST:
    """Load and validate Fashion-MNIST (see the module docstring for where it looks, in order).

    ``train_count``/``test_count`` are the counts the files must hold (the real dataset's by
    default; tests use small files). Returns fresh tensors each call. Raises
    `DatasetNotFoundError` when no copy is found (listing every place searched) and
    `DatasetError` for a corrupt, truncated or wrong file.
    """
    for name, v in (("train_count", train_count), ("test_count", test_count)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{name} must be None (any count) or a positive int (the count "
                             f"the files must hold), not {v!r}")
    searched: list[str] = []
    explicit = [(Path(data_dir), "data_dir")] if data_dir is not None else []
    if not explicit and os.environ.get(ENV_VAR):
        explicit = [(Path(os.environ[ENV_VAR]), f"${ENV_VAR}")]
    for directory, how in explicit:
        if not directory.is_dir():
            raise DatasetNotFoundError(f"{directory} (from {how}): no such directory. {HOW_TO_GET}")
        if not _has_any(directory):
            raise DatasetNotFoundError(f"{directory} (from {how}): holds none of the Fashion-MNIST "
                                       f"files {', '.join(FILES.values())} (.gz or raw). "
                                       f"{HOW_TO_GET}")
        return _load_dir(directory, train_count, test_count)

    tv_raw = Path(torchvision_root or default_torchvision_root()) / "FashionMNIST" / "raw"
    for directory in (DEBIAN_DIR, tv_raw):
        searched.append(str(directory))
        if directory.is_dir() and _has_any(directory):
            return _load_dir(directory, train_count, test_count)
    if download:
        _download(tv_raw.parent.parent)
        return _load_dir(tv_raw, train_count, test_count)
    raise DatasetNotFoundError(f"Fashion-MNIST not found: no data_dir given, ${ENV_VAR} unset, "
                               f"nothing in {' or '.join(searched)}. {HOW_TO_GET}")


def _download(root: Path) -> None:
    import torchvision

    root.mkdir(parents=True, exist_ok=True)
    try:
        for train in (True, False):
            torchvision.datasets.FashionMNIST(str(root), train=train, download=True)
    except Exception as exc:  # torchvision raises RuntimeError/URLError/OSError offline
        raise DatasetNotFoundError(f"downloading Fashion-MNIST into {root} with torchvision "
                                   f"failed: {exc}. {HOW_TO_GET}") from exc


def export_torchvision_layout(data: FashionMNIST, root: str | os.PathLike) -> Path:
    """Write ``data`` as raw IDX files under ``root/FashionMNIST/raw/`` so that
    ``torchvision.datasets.FashionMNIST(root)`` reads exactly the same values. Returns ``root``."""
    raw = Path(root) / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for key, stem in FILES.items():
        arr = getattr(data, key).numpy().astype(np.uint8)
        header = struct.pack(">HBB", 0, _IDX_UBYTE, arr.ndim) + struct.pack(f">{arr.ndim}I",
                                                                            *arr.shape)
        tmp = raw / (stem + ".tmp")
        tmp.write_bytes(header + arr.tobytes())
        os.replace(tmp, raw / stem)
    return Path(root)


# ---- split -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    """Train/validation/test tensors (uint8 images, int64 labels) and how they were made.

    The validation set is the first ``validation_size`` entries of
    ``torch.randperm(60000, generator=torch.Generator().manual_seed(seed))`` taken from the
    official training set, the training set the rest (both in ascending index order). The
    official test set is untouched: use it for final figures only, never for choices.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    train_indices: torch.Tensor
    val_indices: torch.Tensor
    seed: int
    source: str

    def fingerprint(self) -> str:
        """A short SHA-256 of the split's indices and labels: equal iff same split of same data."""
        h = hashlib.sha256()
        for t in (self.train_indices, self.val_indices, self.train_labels, self.val_labels,
                  self.test_labels):
            h.update(t.numpy().tobytes())
        return h.hexdigest()[:16]


def split_train_validation(data: FashionMNIST, *, validation_size: int = 10000,
                           seed: int = 0) -> Split:
    """Split the official training set into train and validation (see `Split`), seeded."""
    n = data.train_images.shape[0]
    if not isinstance(validation_size, int) or not 0 < validation_size < n:
        raise ValueError(f"validation_size must be an int in 1..{n - 1}, not {validation_size!r}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx = perm[:validation_size].sort().values
    train_idx = perm[validation_size:].sort().values
    return Split(
        train_images=data.train_images[train_idx], train_labels=data.train_labels[train_idx],
        val_images=data.train_images[val_idx], val_labels=data.train_labels[val_idx],
        test_images=data.test_images.clone(), test_labels=data.test_labels.clone(),
        train_indices=train_idx, val_indices=val_idx, seed=seed, source=data.source,
    )


def load_split(data_dir: str | os.PathLike | None = None, *, validation_size: int = 10000,
               seed: int = 0, download: bool = False) -> Split:
    """`fashion_mnist` then `split_train_validation`."""
    return split_train_validation(fashion_mnist(data_dir, download=download),
                                  validation_size=validation_size, seed=seed)


def images_to_float(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(N, 28, 28) uint8 images -> (N, 784) ``dtype`` in [0, 1]: k/255 correctly rounded to
    float32 or float64 (one IEEE division), other dtypes rounded from the float32 value (no
    k/255 lies near a tie of a narrower format). Float input is flattened and checked to be
    finite, not rescaled."""
    if images.dim() < 2:
        raise ValueError(f"images must be (N, ...) with N samples, got shape {tuple(images.shape)}")
    flat = images.reshape(images.shape[0], -1)
    if flat.dtype == torch.uint8:
        # IEEE division of the exact integer k by 255 is k/255 correctly rounded.
        if dtype == torch.float64:
            return flat.to(torch.float64).div_(255.0)
        return flat.to(torch.float32).div_(255.0).to(dtype)
    if not flat.dtype.is_floating_point:
        raise TypeError(f"images must be uint8 (0..255) or floating point, not {flat.dtype}")
    if not torch.isfinite(flat).all():
        raise ValueError("images contain NaN or infinity")
    return flat.to(dtype)
