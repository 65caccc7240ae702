"""Datasets: the procedural generator, CIFAR pickles, Fashion-MNIST IDX files, ImageFolder trees."""

from __future__ import annotations

import gzip
import pickle
import struct
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import msda_arena.data.cifar as cifar
from msda_arena.api.errors import UsageError
from msda_arena.data import (
    FolderData,
    TensorData,
    check_dataset_options,
    load_dataset,
    normalize,
)
from msda_arena.data.procedural import class_names, generate, procedural_dataset

FASHION_ROOT = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run on one intra-op thread: steady timings even when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------------------------
# procedural
# ----------------------------------------------------------------------------------------------


def test_procedural_is_deterministic_from_the_seed() -> None:
    x1, y1, m1 = generate(64, seed=3, return_masks=True)
    x2, y2, m2 = generate(64, seed=3, return_masks=True)
    x3, _ = generate(64, seed=4)
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and torch.equal(m1, m2)
    assert not torch.equal(x1, x3)
    assert x1.dtype == torch.uint8 and x1.shape == (64, 3, 32, 32)
    assert y1.dtype == torch.int64 and m1.dtype == torch.bool and m1.shape == (64, 1, 32, 32)


def test_procedural_labels_are_balanced_and_named() -> None:
    _, y = generate(1000, num_classes=10, seed=0)
    assert torch.bincount(y, minlength=10).tolist() == [100] * 10
    names = class_names(10)
    assert len(set(names)) == 10 and names[0] == "disc/solid"
    assert len(set(class_names(20))) == 20
    with pytest.raises(ValueError, match="num_classes"):
        generate(4, num_classes=101)


@pytest.mark.parametrize("object_scale", [0.25, 0.5, 0.8])
def test_object_scale_is_the_bounding_box_side_fraction(object_scale: float) -> None:
    size = 48
    _, _, masks = generate(
        200, image_size=size, object_scale=object_scale, seed=1, return_masks=True
    )
    m = masks[:, 0]
    rows, cols = m.any(dim=2), m.any(dim=1)
    extent = torch.maximum(rows.sum(1), cols.sum(1)).float() / size
    assert extent.mean().item() == pytest.approx(object_scale, rel=0.1)
    assert (extent <= object_scale * 1.15 + 2 / size).all()
    # The object always lies fully inside the image: no mask pixel on a border in most images
    # would be too strict (objects may touch it); every image has an object.
    assert (m.flatten(1).sum(1) > 0).all()


def test_colour_carries_no_label() -> None:
    x, y = generate(2000, seed=2)
    colour = x.float().mean(dim=(2, 3))  # mean RGB per image
    centroids = torch.stack([colour[y == k].mean(0) for k in range(10)])
    spread = centroids.std(0) / colour.std(0)  # between-class vs within-data spread
    assert (spread < 0.15).all(), spread


def test_procedural_dataset_has_disjoint_train_and_test() -> None:
    data = load_dataset("procedural", train_size=300, test_size=100, num_classes=5, seed=7)
    assert isinstance(data, TensorData)
    assert data.train_x.shape == (300, 3, 32, 32) and data.test_x.shape == (100, 3, 32, 32)
    assert data.num_classes == 5 and int(data.train_y.max()) == 4
    train = {bytes(row.numpy()) for row in data.train_x.flatten(1)}
    assert not any(bytes(row.numpy()) in train for row in data.test_x.flatten(1))
    xf = data.train_x.float() / 255
    assert data.mean == pytest.approx(xf.mean(dim=(0, 2, 3)).tolist(), abs=1e-4)
    assert data.std == pytest.approx(xf.std(dim=(0, 2, 3)).tolist(), abs=1e-4)
    z = data.normalize(data.train_x)
    assert z.mean().abs().item() < 0.01 and abs(z.std().item() - 1) < 0.02


def test_procedural_is_learnable_by_a_tiny_cnn(one_thread: None) -> None:
    """A 3-layer CNN trained for a few seconds on one core gets far above chance (10%)."""
    torch.manual_seed(0)
    data = procedural_dataset(train_size=2000, test_size=500, num_classes=10, image_size=24, seed=0)
    x, xt = data.normalize(data.train_x), data.normalize(data.test_x)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        for idx in torch.randperm(2000, generator=g).split(100):
            loss = F.cross_entropy(net(x[idx]), data.train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(xt).argmax(1) == data.test_y).float().mean().item()
    assert acc > 0.5, f"test accuracy {acc:.2f}"


# ----------------------------------------------------------------------------------------------
# TensorData / load_dataset
# ----------------------------------------------------------------------------------------------


def test_normalize_maps_the_mean_to_zero() -> None:
    x = torch.full((2, 3, 4, 4), 128, dtype=torch.uint8)
    z = normalize(x, (128 / 255, 0.0, 1.0), (0.5, 0.5, 0.25))
    assert z.dtype == torch.float32
    torch.testing.assert_close(z[:, 0], torch.zeros(2, 4, 4))
    torch.testing.assert_close(z[:, 2], torch.full((2, 4, 4), (128 / 255 - 1) / 0.25))


def test_tensor_data_validates_and_moves() -> None:
    data = procedural_dataset(train_size=20, test_size=10, seed=0)
    moved = data.to("cpu")
    assert moved is not data and torch.equal(moved.train_x, data.train_x)
    assert moved.in_chans == 3 and moved.image_size == (32, 32)
    with pytest.raises(ValueError, match="uint8"):
        TensorData(
            "bad",
            data.train_x.float(),
            data.train_y,
            data.test_x,
            data.test_y,
            10,
            data.mean,
            data.std,
        )


def test_unknown_dataset_names_and_options_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="cifar100"):
        load_dataset("cifar1000")
    with pytest.raises(UsageError, match="published"):
        load_dataset("imagenet1k")
    with pytest.raises(UsageError, match="object_size"):
        load_dataset("procedural", object_size=0.3)


# ----------------------------------------------------------------------------------------------
# CIFAR
# ----------------------------------------------------------------------------------------------


def _write_batch(
    path: Path, data: np.ndarray, labels: list[int], key: bytes, extra: dict | None = None
) -> None:
    entry = {b"batch_label": b"test", key: labels, b"data": data, **(extra or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)


def _fake_images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def test_cifar10_reads_the_pickle_batches(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    train = [_fake_images(rng, 7) for _ in range(5)]
    labels = [rng.integers(0, 10, 7).tolist() for _ in range(5)]
    for i in range(5):
        _write_batch(folder / f"data_batch_{i + 1}", train[i], labels[i], b"labels")
    test = _fake_images(rng, 4)
    _write_batch(folder / "test_batch", test, [9, 0, 1, 2], b"labels")

    data = load_dataset("cifar10", root=tmp_path, download=False)
    assert isinstance(data, TensorData) and data.num_classes == 10
    assert data.train_x.shape == (35, 3, 32, 32) and data.test_x.shape == (4, 3, 32, 32)
    # Row layout: 1024 red, then green, then blue values, each row-major 32x32.
    flat = np.concatenate(train)
    assert data.train_x[8, 1, 2, 3].item() == flat[8, 1024 + 2 * 32 + 3]
    assert data.train_y.tolist() == [label for batch in labels for label in batch]
    assert data.test_y.tolist() == [9, 0, 1, 2]
    # The batch folder itself is accepted as root too.
    assert torch.equal(load_dataset("cifar10", root=folder, download=False).test_x, data.test_x)


def test_cifar100_reads_fine_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    train = _fake_images(rng, 10)
    _write_batch(
        folder / "train", train, list(range(90, 100)), b"fine_labels", {b"coarse_labels": [0] * 10}
    )
    _write_batch(
        folder / "test",
        _fake_images(rng, 3),
        [5, 99, 0],
        b"fine_labels",
        {b"coarse_labels": [1] * 3},
    )
    data = load_dataset("cifar100", root=tmp_path, download=False)
    assert data.num_classes == 100
    assert data.train_y.tolist() == list(range(90, 100)) and data.test_y.tolist() == [5, 99, 0]
    assert torch.equal(data.train_x.flatten(1), torch.from_numpy(train))


def test_missing_cifar_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        load_dataset("cifar100", root=tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path) in msg and "cifar-100-python/" in msg and "--profile quick" in msg
    assert "\n" not in msg


def test_failed_download_is_a_one_line_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(name: str, root: Path) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(cifar, "_download", offline)
    with pytest.raises(UsageError) as err:
        load_dataset("cifar10", root=tmp_path)
    msg = str(err.value)
    assert "download failed" in msg and "offline?" in msg and "cifar-10-batches-py/" in msg
    assert "\n" not in msg


def test_cifar_pickles_cannot_run_code_or_pass_as_the_other_layout(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": print, b"labels": []}, f)  # a global that is not a numpy array
    with pytest.raises(UsageError, match="data_batch_1"):
        load_dataset("cifar10", root=tmp_path, download=False)

    rng = np.random.default_rng(2)
    _write_batch(folder / "data_batch_1", _fake_images(rng, 2), [0, 1], b"fine_labels")
    with pytest.raises(UsageError, match="other CIFAR layout"):
        load_dataset("cifar10", root=tmp_path, download=False)


# ----------------------------------------------------------------------------------------------
# Fashion-MNIST
# ----------------------------------------------------------------------------------------------


def _idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_fashion(
    root: Path, n_train: int = 6, n_test: int = 4, gz: bool = True
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    root.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        raw = _idx_bytes(array)
        if gz:
            (root / (stem + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (root / stem).write_bytes(raw)
    return arrays


@pytest.mark.skipif(not FASHION_ROOT.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_reads_the_real_idx_files() -> None:
    data = load_dataset("fashion_mnist")
    assert isinstance(data, TensorData)
    assert data.train_x.shape == (60000, 1, 28, 28) and data.test_x.shape == (10000, 1, 28, 28)
    assert torch.bincount(data.train_y).tolist() == [6000] * 10
    assert torch.bincount(data.test_y).tolist() == [1000] * 10
    assert (data.train_x.float().mean() / 255).item() == pytest.approx(data.mean[0], abs=0.002)


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_reads_written_idx_files(tmp_path: Path, gz: bool) -> None:
    arrays = _write_fashion(tmp_path, gz=gz)
    data = load_dataset("fashion_mnist", root=tmp_path)
    assert data.train_x.shape == (6, 1, 28, 28) and data.test_x.shape == (4, 1, 28, 28)
    assert np.array_equal(data.train_x[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert data.test_y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_fashion_mnist_rejects_corrupt_idx_files(tmp_path: Path) -> None:
    _write_fashion(tmp_path)
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress(bad.read_bytes()))
    raw[3] = 0x01  # magic of a 1-d file
    bad.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(UsageError, match=r"train-images-idx3-ubyte\.gz.*magic"):
        load_dataset("fashion_mnist", root=tmp_path)

    raw[3] = 0x03
    bad.write_bytes(gzip.compress(bytes(raw[:-100])))  # truncated
    with pytest.raises(UsageError, match="truncated"):
        load_dataset("fashion_mnist", root=tmp_path)

    bad.write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(UsageError, match="cannot read"):
        load_dataset("fashion_mnist", root=tmp_path)


def test_missing_fashion_mnist_names_the_debian_package(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="dataset-fashion-mnist") as err:
        load_dataset("fashion_mnist", root=tmp_path)
    assert str(tmp_path) in str(err.value)


# ----------------------------------------------------------------------------------------------
# ImageFolder
# ----------------------------------------------------------------------------------------------


def _write_tree(
    root: Path, classes: dict[str, tuple[int, int, int]], per_split: dict[str, int]
) -> None:
    from PIL import Image

    for split, n in per_split.items():
        for name, colour in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.new("RGB", (40 + 3 * i, 30), colour).save(folder / f"{i}.png")


def test_imagefolder_tree_loads_through_a_dataloader(tmp_path: Path) -> None:
    from msda_arena.data.imagefolder import make_loader

    _write_tree(tmp_path, {"blue": (0, 0, 255), "red": (255, 0, 0)}, {"train": 3, "val": 2})
    data = load_dataset("imagenet100", root=tmp_path, image_size=16)
    assert isinstance(data, FolderData)
    assert data.classes == ("blue", "red") and data.num_classes == 2
    assert (data.num_train, data.num_val) == (6, 4)
    loader = make_loader(data, "val", batch_size=4, workers=0)
    batches = list(loader)
    assert len(batches) == 1
    x, y = batches[0]
    assert x.dtype == torch.uint8 and x.shape == (4, 3, 16, 16)
    assert y.tolist() == [0, 0, 1, 1]
    assert (x[y == 0, 2] == 255).all() and (x[y == 1, 0] == 255).all()
    train = make_loader(data, "train", batch_size=4, workers=0)
    assert [xb.shape[0] for xb, _ in train] == [4]  # drop_last for fixed shapes
    assert data.normalize(x).dtype == torch.float32


def test_imagefolder_errors_name_the_missing_piece(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no train/ folder"):
        load_dataset("imagenet100", root=tmp_path)
    _write_tree(tmp_path, {"a": (0, 0, 0), "b": (9, 9, 9)}, {"train": 1})
    _write_tree(tmp_path, {"a": (0, 0, 0)}, {"val": 1})
    with pytest.raises(UsageError, match="different class folders"):
        load_dataset("imagenet100", root=tmp_path)
    (tmp_path / "val" / "b").mkdir()
    with pytest.raises(UsageError, match=r"no images under .*val"):
        load_dataset("imagenet100", root=tmp_path)


def test_label_noise_flips_the_configured_fraction_of_training_labels_only() -> None:
    """``dataset_options.label_noise`` (issue 19): exactly round(f * N) training labels
    change, each to another class; the test split and the images are untouched; the
    same seed gives the same labels, another seed other ones."""
    options = dict(train_size=400, test_size=100, num_classes=5, image_size=16)
    clean = load_dataset("procedural", **options)
    noisy = load_dataset("procedural", **options, label_noise=0.25)
    changed = noisy.train_y != clean.train_y
    assert int(changed.sum()) == 100 and noisy.info["flipped"] == 100
    assert bool(((noisy.train_y >= 0) & (noisy.train_y < 5)).all())
    assert torch.equal(noisy.test_y, clean.test_y) and torch.equal(noisy.test_x, clean.test_x)
    assert torch.equal(noisy.train_x, clean.train_x)
    again = load_dataset("procedural", **options, label_noise=0.25)
    assert torch.equal(again.train_y, noisy.train_y)
    other = load_dataset("procedural", **options, label_noise=0.25, label_noise_seed=1)
    assert not torch.equal(other.train_y, noisy.train_y)
    # every other class is reachable as the wrong label: not a fixed shift
    shifts = (noisy.train_y[changed] - clean.train_y[changed]) % 5
    assert set(shifts.tolist()) == {1, 2, 3, 4}
    unchanged = load_dataset("procedural", **options, label_noise=0.0)
    assert torch.equal(unchanged.train_y, clean.train_y)


@pytest.mark.parametrize(
    ("name", "options", "fragment"),
    [
        ("procedural", {"label_noise": 1.5}, "label_noise <= 1"),
        ("procedural", {"label_noise": -0.1}, "0 <= label_noise"),
        ("procedural", {"label_noise_seed": 0.5}, "must be a whole number"),
        ("imagenet100", {"label_noise": 0.2}, "unknown option(s) 'label_noise'"),
    ],
)
def test_bad_label_noise_is_one_line(name, options, fragment) -> None:
    with pytest.raises(UsageError) as exc:
        check_dataset_options(name, options)
    assert fragment in str(exc.value) and "\n" not in str(exc.value)
