"""FACES: augmented face images, 25×25, linear outputs with squared error (thesis §4.12, Table 4.2).

Sources, chosen explicitly:

* ``dataset=faces`` with ``dataset.path=/…/newfaces_rot_single.mat`` — Martens' file
  (http://www.cs.toronto.edu/~jmartens/newfaces_rot_single.mat): variable ``newfaces_single``, 625 × 165 600,
  one image per column; as in Martens' released K-FAC code the first 25/40 of the columns train
  (103 500) and the last 10/40 test (41 400), the middle 20 700 unused.
* ``dataset=faces`` with ``dataset.path=null`` — built here from the Olivetti faces (400 images, 40 people ×
  10, 64×64, via scikit-learn's fetcher; ``dataset.download=true`` or ``make data`` fetches them once where a
  network exists). Person-disjoint split mirroring the file's: people 1–25 train, 26–30 unused, 31–40 test;
  each image yields ``variants_per_image`` (414) random rotations/scalings (:mod:`secondorder.data.augment`),
  giving 103 500 / 41 400 cases. Labelled as built here, not Martens' file.
* ``dataset=faces_lfw`` — offline stand-in: the same augmentation applied to the 100 face crops (25×25,
  Labeled Faces in the Wild) bundled with scikit-image (``skimage.data.lfw_subset()``, whose first 100 images
  are faces), split by image into 70 training and 30 test faces (``split``, below). Labelled as a stand-in.

The stand-in's split. scikit-image drew its 100 faces at random from LFW (13 233 images of 5 749 people) and ships
no identities, so the split is by image. That is close to person-disjoint, as the original's is: LFW's most
frequent people (G. W. Bush 530 images, C. Powell 236, T. Blair 144, D. Rumsfeld 121, G. Schröder 109, then fewer
than 80 each) make two random LFW images the same person with probability Σₚ (nₚ/13 233)² ≈ 0.003 (those five
alone give 0.0022), so the 70 × 30 train–test pairs hold about six same-person pairs — most test faces are of
people never seen in training.
``split=stratified`` (the default) ranks the 100 faces by their distance to the mean face and sends every
(100 / n_test)-th rank to the test set, so that the test faces are as typical as the training faces: the error of
the mean training face is 21.26 on the training faces and 21.78 on the test faces. ``split=first`` (images 1–70
train, 71–100 test: the split of runs made before it) gives 21.67 / 20.88 — its 30 test faces happen to be
*simpler*, and early in training (while an autoencoder captures little more than the mean and the leading
components) its test error sat below its training error (``results/table-4.3/quick``). On the augmented sets
(28 980 / 12 420 cases), the error of the best 30-component linear code (PCA fitted on training cases) is 1.76 /
1.91 with the stratified split and 1.81 / 1.75 with the old one; the mean-face error is 14.56 / 14.29 and
14.86 / 13.69 — the rotations and scalings leave the stratified test set a little closer to the mean at first.

Pixels are in [0, 1]; the objective is ½‖z − x‖² per case (matching identity + squared error).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from secondorder.data.augment import random_transforms, transform_images
from secondorder.data.cache import cache_key, cached_tensors
from secondorder.data.matfile import as_rows, load_mat_variables
from secondorder.data.splits import DataSplits
from secondorder.errors import DataError
from secondorder.validation import Check, in_range, non_negative, one_of, positive

MAT_URL = "http://www.cs.toronto.edu/~jmartens/newfaces_rot_single.mat"
PEOPLE, TRAIN_PEOPLE, TEST_PEOPLE = 40, 25, 10  # the file holds the same number of variants of each person
AUGMENT_VERSION = 1


@dataclass
class FacesConfig:
    name: str = "faces"
    path: str | None = None
    download: bool = False
    seed: int = 0
    variants_per_image: int = 414
    max_rotation_deg: float = 90.0
    scale_min: float = 1.4
    scale_max: float = 1.8
    max_translation: float = 0.0
    image_size: int = 25
    supersample: int = 4
    cache: bool = True
    loss: str = "squared_error"
    metric: str = "reconstruction_sse"
    batch_size: int = 500

    def check(self) -> list[Check]:
        return [
            *positive(self, "variants_per_image", "image_size", "supersample", "scale_min", "batch_size"),
            in_range(self, "max_rotation_deg", 0.0, 180.0, closed_high=True),
            ("scale_max", self.scale_max >= self.scale_min, "must be >= scale_min"),
            *non_negative(self, "max_translation"),
        ]


@dataclass
class FacesLfwConfig(FacesConfig):
    name: str = "faces_lfw"
    train_images: int = 70
    split: str = "stratified"  # stratified | first (see the module docstring)

    def check(self) -> list[Check]:
        return [*super().check(), in_range(self, "train_images", 1, 100),
                one_of(self, "split", ["stratified", "first"])]


def lfw_split(faces: torch.Tensor, train_images: int, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, test) of the stand-in's faces (n, h, w). ``first``: the first ``train_images`` train.
    ``stratified``: rank the faces by ‖x − x̄‖² (x̄ the mean face) and take ranks ⌊(j + ½) n / n_test⌋,
    j = 0 … n_test − 1, for the test set — a systematic sample over typicality."""
    n = len(faces)
    if split == "first":
        return torch.arange(train_images), torch.arange(train_images, n)
    flat = faces.reshape(n, -1).double()
    order = (flat - flat.mean(dim=0)).square().sum(dim=1).argsort(stable=True)
    n_test = n - train_images
    test = order[((torch.arange(n_test, dtype=torch.float64) + 0.5) * n / n_test).long()].sort().values
    is_test = torch.zeros(n, dtype=torch.bool)
    is_test[test] = True
    return (~is_test).nonzero().flatten(), test


def load_faces(cfg: FacesConfig, data_dir: Path) -> DataSplits:
    if isinstance(cfg, FacesLfwConfig):
        sources = _lfw_faces()
        train_ids, test_ids = lfw_split(sources, cfg.train_images, cfg.split)
        origin = (f"skimage lfw_subset faces (images 1–{cfg.train_images} train, the rest test)" if cfg.split == "first"
                  else f"skimage lfw_subset faces ({cfg.train_images} train, {len(test_ids)} test, stratified "
                       "by distance to the mean face)")
        label = "FACES stand-in (LFW crops from scikit-image, H&S-style augmentation; not Olivetti FACES)"
        stand_in = True
    elif cfg.path is not None:
        return _martens_mat(Path(cfg.path).expanduser())
    else:
        sources = olivetti_faces(data_dir, cfg.download)
        people = torch.arange(400) // 10
        train_ids, test_ids = (people < 25).nonzero().flatten(), (people >= 30).nonzero().flatten()
        origin = "Olivetti faces (people 1–25 train, 31–40 test)"
        label = "FACES built here from Olivetti (H&S-style augmentation; not Martens' newfaces_rot_single.mat)"
        stand_in = False
    params = {
        "version": AUGMENT_VERSION, "origin": origin, "seed": cfg.seed, "variants": cfg.variants_per_image,
        "rotation": cfg.max_rotation_deg, "scale": [cfg.scale_min, cfg.scale_max],
        "translation": cfg.max_translation, "size": cfg.image_size, "supersample": cfg.supersample,
    }
    cache_file = data_dir / cfg.name / f"augmented-{cache_key(params)}.pt"

    def make() -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(cfg.seed)
        return {split: _augment(sources, ids, cfg, generator) for split, ids in (("train", train_ids),
                                                                                ("test", test_ids))}

    data = cached_tensors(cache_file, make, use_cache=cfg.cache)
    return DataSplits(cfg.name, data["train"], data["train"], data["test"], data["test"],
                      source=f"{origin}; augmentation v{AUGMENT_VERSION}, seed {cfg.seed}", label=label,
                      stand_in=stand_in)


def _augment(sources: torch.Tensor, ids: torch.Tensor, cfg: FacesConfig, generator: torch.Generator):
    index = ids.repeat_interleave(cfg.variants_per_image)
    angles, scales, shifts = random_transforms(
        len(index), generator, cfg.max_rotation_deg, (cfg.scale_min, cfg.scale_max), cfg.max_translation
    )
    images = transform_images(sources, index, angles, scales, shifts, cfg.image_size, cfg.supersample)
    return images.clamp_(0.0, 1.0)


def _lfw_faces() -> torch.Tensor:
    try:
        from skimage.data import lfw_subset
    except ImportError as exc:
        raise DataError("dataset=faces_lfw needs scikit-image: pip install 'secondorder[offline]'") from exc
    return torch.from_numpy(lfw_subset()[:100].astype(np.float32))


def olivetti_faces(data_dir: Path, download: bool) -> torch.Tensor:
    try:
        from sklearn.datasets import fetch_olivetti_faces
    except ImportError as exc:
        raise DataError("building FACES from Olivetti needs scikit-learn: pip install 'secondorder[faces]'") from exc
    home = data_dir / "olivetti"
    try:
        bunch = fetch_olivetti_faces(data_home=str(home), download_if_missing=download, shuffle=False)
    except OSError as exc:
        raise DataError(
            f"Olivetti faces not found under {home} ({str(exc).splitlines()[0]}); run `make data` or add "
            f"dataset.download=true where a network exists, set dataset.path=<newfaces_rot_single.mat> "
            f"({MAT_URL}), or use dataset=faces_lfw offline"
        ) from None
    return torch.from_numpy(bunch.images.astype(np.float32))


def _martens_mat(path: Path) -> DataSplits:
    arrays = load_mat_variables(path, ["newfaces_single"], how_to_get=f"download it from {MAT_URL}")
    faces = as_rows(arrays["newfaces_single"], 625, what=f"{path.name}:newfaces_single")
    if len(faces) % PEOPLE:
        raise DataError(f"{path} holds {len(faces)} images, not a multiple of {PEOPLE}; expected 625 × 165 600")
    x = torch.from_numpy(faces.astype(np.float32))
    per_person = len(faces) // PEOPLE
    train, test = x[: TRAIN_PEOPLE * per_person], x[-TEST_PEOPLE * per_person :]
    return DataSplits("faces", train, train, test, test, source=str(path),
                      label="FACES (Martens newfaces_rot_single.mat)", stand_in=False)
