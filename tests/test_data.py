"""convbook.data: real datasets as tensors, the fast loader, and the fixed splits."""
from __future__ import annotations

import pytest
import torch
from torchvision import datasets, transforms

from convbook import data

FIRST_TRAIN_LABELS = {
    "fashion_mnist": [9, 0, 0, 3, 0, 2, 7, 2, 5, 5],
    "mnist": [5, 0, 4, 1, 9, 2, 1, 3, 1, 4],
    "cifar10": [6, 9, 9, 4, 1, 1, 2, 7, 8, 3],
}
SHAPES = {"fashion_mnist": (1, 28, 28), "mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
TRAIN_SIZES = {"fashion_mnist": 60_000, "mnist": 60_000, "cifar10": 50_000}


@pytest.fixture(scope="module")
def cifar10():
    """CIFAR-10 (train, test) tensors, loaded once for the module (about 2 s each)."""
    return [data.load_tensors("cifar10", train=t, download=False) for t in (True, False)]


@pytest.fixture(scope="module", params=["fashion_mnist", "mnist", "cifar10"])
def train_tensors(request):
    if request.param == "cifar10":
        return "cifar10", request.getfixturevalue("cifar10")[0]
    return request.param, data.load_tensors(request.param, train=True, download=False)


@pytest.fixture(scope="module")
def fashion_test():
    return data.load_tensors("fashion_mnist", train=False, download=False)


def fingerprints(images: torch.Tensor) -> torch.Tensor:
    """An exact integer key per image from a spread of its pixels (a cheap stand-in for
    comparing whole images): two sets of images hold the same images when their sorted
    keys are equal."""
    pixels = images.flatten(1)[:, ::97].mul(255).round().to(torch.int64)
    generator = torch.Generator().manual_seed(1)
    weights = torch.randint(1, 2**40, (pixels.shape[1],), generator=generator)
    return (pixels * weights).sum(1)


# ------------------------------------------------------------------------ load_tensors


def test_load_tensors_shapes_dtypes_ranges_and_order(train_tensors):
    name, (images, labels) = train_tensors
    assert images.shape == (TRAIN_SIZES[name], *SHAPES[name])
    assert images.dtype == torch.float32 and labels.dtype == torch.int64
    assert images.min() == 0 and images.max() == 1
    assert labels[:10].tolist() == FIRST_TRAIN_LABELS[name]
    assert torch.bincount(labels, minlength=10).min() >= 5_000


def test_mean_std_match_the_training_data(train_tensors):
    name, (images, _) = train_tensors
    mean, std = data.MEAN_STD[name]
    assert torch.allclose(images.mean((0, 2, 3)), torch.tensor(mean), atol=1e-3)
    assert torch.allclose(images.std((0, 2, 3)), torch.tensor(std), atol=1e-3)


def test_load_tensors_matches_torchvision_sample_by_sample(fashion_test):
    images, labels = fashion_test
    dataset = data.get_dataset("fashion_mnist", train=False, transform=transforms.ToTensor())
    assert isinstance(dataset, datasets.FashionMNIST)
    for i in (0, 1234, 9999):
        image, label = dataset[i]
        assert torch.equal(image, images[i]) and label == labels[i]


def test_cifar10_test_labels(cifar10):
    _, labels = cifar10[1]
    assert labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert torch.bincount(labels).tolist() == [1_000] * 10


def test_class_names_match_the_datasets():
    assert data.FASHION_MNIST_CLASSES == tuple(datasets.FashionMNIST.classes)
    cifar = data.get_dataset("cifar10", train=False, download=False)
    assert data.CIFAR10_CLASSES == tuple(cifar.classes)  # read from batches.meta


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        data.load_tensors("svhn")


# --------------------------------------------------------------------------- normalize


def test_normalize_standardises_each_channel(fashion_test):
    images, _ = fashion_test
    z = data.normalize(images, "fashion_mnist")
    mean, std = data.MEAN_STD["fashion_mnist"]
    assert torch.allclose(z, (images - mean[0]) / std[0])
    assert abs(z.mean().item()) < 0.05 and abs(z.std().item() - 1) < 0.05


def test_normalize_rejects_wrong_channels_and_names(fashion_test):
    images, _ = fashion_test
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, H, W\).*\(10000, 1, 28, 28\)"):
        data.normalize(images, "cifar10")
    with pytest.raises(ValueError, match="unknown dataset"):
        data.normalize(images, "imagenet")
    with pytest.raises(TypeError, match="torch.uint8"):
        data.normalize((images * 255).to(torch.uint8), "fashion_mnist")


# ------------------------------------------------------------------------ TensorLoader


def small_set(n: int = 103):
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return images, torch.arange(n)


def test_tensor_loader_unshuffled_batches_in_order():
    images, labels = small_set()
    loader = data.TensorLoader(images, labels, 10)
    batches = list(loader)
    assert len(loader) == len(batches) == 11 and loader.dataset_size == 103
    assert [len(y) for _, y in batches] == [10] * 10 + [3]
    assert torch.equal(torch.cat([y for _, y in batches]), labels)
    assert all(torch.equal(X[:, 0, 0, 0], y.float()) for X, y in batches)


def test_tensor_loader_drop_last():
    loader = data.TensorLoader(*small_set(), 10, drop_last=True)
    assert len(loader) == len(list(loader)) == 10


def test_tensor_loader_reshuffles_every_epoch_reproducibly():
    images, labels = small_set()
    loader = data.TensorLoader(images, labels, 16, shuffle=True, seed=3)
    epochs = [torch.cat([y for _, y in loader]) for _ in range(2)]
    for order in epochs:
        assert torch.equal(order.sort().values, labels)  # every example exactly once
    assert not torch.equal(epochs[0], epochs[1]) and not torch.equal(epochs[0], labels)
    again = data.TensorLoader(images, labels, 16, shuffle=True, seed=3)
    assert all(torch.equal(a, torch.cat([y for _, y in again])) for a in epochs)
    other = data.TensorLoader(images, labels, 16, shuffle=True, seed=4)
    assert not torch.equal(epochs[0], torch.cat([y for _, y in other]))
    X, y = next(iter(loader))
    assert torch.equal(X[:, 0, 1, 1], y.float())  # images stay paired with their labels


def test_tensor_loader_applies_the_transform_per_batch():
    images, labels = small_set()
    seen = []
    loader = data.TensorLoader(images, labels, 50, transform=lambda X: seen.append(len(X)) or -X)
    X, _ = next(iter(loader))
    assert torch.equal(X, -images[:50]) and seen == [50]


def test_tensor_loader_rejects_bad_input():
    images, labels = small_set()
    with pytest.raises(ValueError, match="labels has 102 entries but there are 103 images"):
        data.TensorLoader(images, labels[:-1], 8)
    with pytest.raises(ValueError, match="batch_size"):
        data.TensorLoader(images, labels, 0)
    with pytest.raises(TypeError, match="images must be a tensor, got list"):
        data.TensorLoader(images.tolist(), labels, 8)


@pytest.mark.parametrize("convert", [torch.Tensor.float, torch.Tensor.int, torch.Tensor.bool])
def test_tensor_loader_refuses_labels_that_are_not_int64(convert):
    images, labels = small_set()
    dtype = convert(labels).dtype
    with pytest.raises(TypeError, match=rf"labels must be integer class indices \(int64\) .*got {dtype}"):
        data.TensorLoader(images, convert(labels), 8)


def test_tensor_loader_refuses_negative_labels():
    images, labels = small_set()
    with pytest.raises(ValueError, match=r"labels must be class indices >= 0, found -3"):
        data.TensorLoader(images, labels - 3, 8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tensor_loader_keeps_data_on_the_gpu():
    images, labels = small_set()
    loader = data.TensorLoader(images, labels, 16, shuffle=True, device="cuda")
    cpu = data.TensorLoader(images, labels, 16, shuffle=True)
    for (X, y), (Xc, yc) in zip(loader, cpu):
        assert X.is_cuda and y.is_cuda
        assert torch.equal(y.cpu(), yc) and torch.equal(X.cpu(), Xc)


# ---------------------------------------------------------------------------- splits


def test_train_val_split():
    images, labels = small_set(100)
    Xtr, ytr, Xval, yval = data.train_val_split(images, labels, 0.2, seed=0)
    assert len(ytr) == 80 and len(yval) == 20
    assert torch.equal(torch.cat([ytr, yval]).sort().values, labels)
    assert torch.equal(Xval[:, 0, 0, 0], yval.float())
    assert torch.equal(data.train_val_split(images, labels, 0.2, seed=0)[3], yval)
    assert not torch.equal(data.train_val_split(images, labels, 0.2, seed=1)[3], yval)
    with pytest.raises(ValueError, match="val_fraction"):
        data.train_val_split(images, labels, 1.5)
    with pytest.raises(ValueError, match="differ in length"):
        data.train_val_split(images, labels[:50])


def test_cifar10_split_sizes_union_and_determinism(cifar10):
    (Xtr, ytr), (Xval, yval), (Xte, yte) = parts = data.cifar10_split()
    assert [len(y) for _, y in parts] == [48_000, 6_000, 6_000]
    assert Xtr.shape[1:] == (3, 32, 32) and Xtr.dtype == torch.float32
    every = cifar10
    # Same multiset of 60,000 images and labels: the three parts are disjoint and complete.
    split_keys = torch.cat([fingerprints(X) for X, _ in parts]).sort().values
    all_keys = torch.cat([fingerprints(X) for X, _ in every]).sort().values
    assert torch.equal(split_keys, all_keys)
    all_labels = torch.cat([y for _, y in every])
    assert torch.equal(torch.cat([ytr, yval, yte]).sort().values, all_labels.sort().values)
    assert torch.bincount(yval).min() > 500  # a random split keeps every class
    _, (_, yval_again), _ = data.cifar10_split(seed=0)
    assert torch.equal(yval_again, yval)


def _padded_windows(image: torch.Tensor, padding: int) -> list[torch.Tensor]:
    """Every crop of the zero-padded image and its mirror: what augmentation may return."""
    padded = torch.nn.functional.pad(image, (padding,) * 4)
    h, w = image.shape[-2:]
    crops = [
        padded[:, top:top + h, left:left + w]
        for top in range(2 * padding + 1)
        for left in range(2 * padding + 1)
    ]
    return crops + [crop.flip(-1) for crop in crops]


@pytest.mark.parametrize("padding", [0, 2])
def test_random_crop_flip_returns_shifted_or_mirrored_images(padding):
    images = torch.rand(16, 3, 7, 9, generator=torch.Generator().manual_seed(1))
    out = data.random_crop_flip(images, padding, generator=torch.Generator().manual_seed(2))
    assert out.shape == images.shape and out.is_contiguous()
    for image, result in zip(images, out):
        assert any(torch.equal(result, window) for window in _padded_windows(image, padding))
    mirrored = sum(not torch.equal(r, i) for r, i in zip(out, images))
    assert 0 < mirrored <= 16


def test_random_crop_flip_is_reproducible_and_varies():
    images = torch.rand(32, 1, 8, 8)
    first = data.random_crop_flip(images, 3, generator=torch.Generator().manual_seed(5))
    again = data.random_crop_flip(images, 3, generator=torch.Generator().manual_seed(5))
    other = data.random_crop_flip(images, 3, generator=torch.Generator().manual_seed(6))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_random_crop_flip_rejects_bad_input():
    with pytest.raises(ValueError, match=r"4-D.*\(8, 8\)"):
        data.random_crop_flip(torch.rand(8, 8))
    with pytest.raises(ValueError, match="padding"):
        data.random_crop_flip(torch.rand(2, 1, 8, 8), padding=-1)


@pytest.mark.parametrize("dy, dx", [(0, 0), (2, 0), (0, 3), (-1, 2), (3, -4), (-2, -2)])
def test_shift_matches_a_naive_pixel_loop(dy, dx):
    images = torch.randn(2, 3, 6, 7, generator=torch.Generator().manual_seed(dy * 10 + dx))
    naive = torch.zeros_like(images)
    for i in range(6):
        for j in range(7):
            if 0 <= i - dy < 6 and 0 <= j - dx < 7:
                naive[..., i, j] = images[..., i - dy, j - dx]
    assert torch.equal(data.shift(images, dy, dx), naive)


def test_shift_out_of_the_frame_is_an_error():
    with pytest.raises(ValueError, match=r"moves a 4x5 image out of its frame"):
        data.shift(torch.ones(4, 5), 4, 0)
