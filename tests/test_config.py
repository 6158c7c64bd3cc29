"""Every config file composes and validates; bad keys, types and values are one-line errors."""

from __future__ import annotations

import itertools

import pytest

from secondorder.composition import (
    CONF_DIR,
    available_options,
    check_group_choices,
    compose_config,
    compose_run,
    path_override,
)
from secondorder.config import TrainerConfig, validate
from secondorder.data import DATASETS
from secondorder.errors import ConfigError
from secondorder.models import MODELS
from secondorder.optim import OPTIMIZERS
from tests.helpers import composed

FIRST_ORDER = ("sgd", "momentum", "nesterov", "adam")


def test_every_group_option_has_a_registered_implementation() -> None:
    assert set(available_options("optimizer")) == set(OPTIMIZERS)
    assert set(available_options("dataset")) == set(DATASETS)
    for model in available_options("model"):
        assert composed(f"model={model}").model.name in MODELS


@pytest.mark.parametrize(
    ("dataset", "optimizer"),
    list(itertools.product(available_options("dataset"), available_options("optimizer"))),
)
def test_every_combination_composes_and_validates(dataset: str, optimizer: str) -> None:
    run = validate(composed(f"dataset={dataset}", f"optimizer={optimizer}"))
    assert run.dataset.name == dataset and run.optimizer.name == optimizer
    if optimizer in FIRST_ORDER:
        assert run.optimizer.batch_size == run.dataset.batch_size  # interpolated from the dataset


@pytest.mark.parametrize("model", available_options("model"))
def test_every_model_file_validates(model: str) -> None:
    assert validate(composed(f"model={model}")).model.name in MODELS


def test_yaml_defaults_agree_with_the_schema_defaults() -> None:
    """The YAML files document the defaults; the dataclasses must not silently disagree."""
    run = validate(composed())
    assert run.trainer == TrainerConfig()
    for name, cls in OPTIMIZERS.items():
        typed = validate(composed(f"optimizer={name}")).optimizer
        overrides = {"batch_size": typed.batch_size} if name in FIRST_ORDER else {}
        if "defaults:" in (CONF_DIR / "optimizer" / f"{name}.yaml").read_text():
            continue  # a variant of another file: it changes the defaults on purpose (tested with its method)
        default = cls.config_class(**overrides)
        assert typed == default, name


def test_model_follows_the_dataset_unless_overridden() -> None:
    cfg = composed("dataset=curves")
    assert list(cfg.model.encoder_dims) == [784, 400, 200, 100, 50, 25, 6]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optimizer.lr=-1"], "optimizer.lr=-1.0: must be > 0"),
        (["optimizer.batch_size=0"], "optimizer.batch_size=0: must be > 0"),
        (["optimizer=momentum", "optimizer.momentum=1.5"], "optimizer.momentum=1.5: must lie in [0.0, 1.0)"),
        (["trainer.max_steps=0"], "trainer.max_steps=0: must be > 0"),
        (["trainer.max_steps=null"], "set at least one budget"),
        (["trainer.dtype=float16"], "trainer.dtype='float16': must be one of float32, float64"),
        (["trainer.resume=sometimes"], "trainer.resume='sometimes'"),
        (["+optimizer.lrr=1"], "optimizer.lrr: unknown key"),
        (["optimizer.lr=fast"], "optimizer.lr: Value 'fast' of type 'str' could not be converted to Float"),
        (["model.init.scheme=orthogonal"], "model.init.scheme='orthogonal': must be one of sparse, glorot, he"),
        (["dataset.loss=hinge"], "dataset.loss='hinge'"),
        (["objective.l2=-1"], "objective.l2=-1.0: must be >= 0"),
        (["seed=-3"], "seed=-3: must be a non-negative integer"),
        (["optimizer=hf", "optimizer.rho_low=0.8"], "optimizer.rho_low=0.8: must be <= rho_high=0.75"),
    ],
)
def test_bad_values_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(composed(*overrides))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_resume_flag_accepts_yaml_booleans() -> None:
    assert validate(composed("trainer.resume=true")).trainer.resume == "true"
    assert validate(composed("trainer.resume=auto")).trainer.resume == "auto"


def test_unknown_group_choice_lists_the_options() -> None:
    options = ", ".join(available_options("optimizer"))
    with pytest.raises(ConfigError, match=f"unknown optimizer 'nope'; available: {options}$"):
        check_group_choices(["optimizer=nope"])
    with pytest.raises(ConfigError, match="unknown optimizer 'kfcc'"):
        check_group_choices(["-m", "optimizer=adam,kfcc"])
    check_group_choices(["optimizer=adam,sgd", "optimizer.lr=3"])  # valid: no error


@pytest.mark.parametrize("experiment", available_options("experiment"))
def test_every_experiment_composes_and_validates(experiment: str) -> None:
    run = validate(composed(f"experiment={experiment}"))
    if experiment.startswith("kfac_rnn_"):  # K-FAC for RNNs: the paper's batch of 200 for every method
        assert run.dataset.name == experiment.removeprefix("kfac_rnn_") and run.dataset.batch_size == 200
        assert run.optimizer.name == "kfac_rnn" and run.optimizer.batch_size == 200
    elif experiment == "hf_rnn":  # thesis §4.13
        assert run.optimizer.name == "hf" and run.optimizer.max_cg_iters == 300 and run.dataset.name == "addition"
    elif experiment.startswith(("kfac_", "nag_")):  # the K-FAC paper's settings
        assert run.objective.l2 == 1e-5 and run.trainer.polyak_decay == 0.99
        assert run.dataset.name == experiment.split("_")[1]
    else:  # thesis Table 4.3 cells
        row, column = experiment.removeprefix("table_4_3/").rsplit("_", 2)[0], experiment.rsplit("_", 2)[1:]
        assert run.dataset.name == row.removesuffix("_l2")
        assert run.objective.l2 == {"mnist_l2": 1e-4, "faces_l2": 1e-2}.get(row, 0.0)
        assert run.pretrain.name == ("rbm" if column[0] == "pt" else "none")
        assert run.optimizer.name == ("ncg" if column[1] == "ncg" else "hf")


def test_command_line_beats_the_experiment() -> None:
    run = validate(composed("experiment=kfac_curves", "optimizer=kfac_tridiag", "trainer.max_steps=7"))
    assert run.optimizer.approximation == "tridiag" and run.trainer.max_steps == 7


@pytest.mark.parametrize(("optimizer", "old", "new"), [
    ("kfac_rnn", "approx", "approximation"), ("kfac_rnn", "damping", "initial_lambda"),
    ("kfac", "lambda_decay", "lambda_decrease"), ("kfra", "stats_decay_max", "stats_decay"),
    ("kflr", "lambda_decay", "lambda_decrease"), ("kfac_tridiag", "stats_decay_max", "stats_decay"),
])
def test_a_renamed_key_names_its_new_spelling(train, optimizer: str, old: str, new: str) -> None:
    """README "Config names": the old spelling is a one-line error with exit code 2 that names the new key."""
    code, err = train(f"optimizer={optimizer}", f"optimizer.{old}=0.5")
    assert code == 2
    assert err.strip() == f'train: error: optimizer.{old} was renamed optimizer.{new} (see README "Config names")'
    with pytest.raises(ConfigError, match=f"^optimizer.{old} was renamed optimizer.{new} "):
        validate(composed(f"optimizer={optimizer}", f"+optimizer.{old}=0.5"))  # as an experiment file would set it


def test_renames_are_per_optimizer(train) -> None:
    """ACP keeps its own ``damping`` (a different quantity); a method that never had a key gets 'unknown key'."""
    assert compose_run(["optimizer=acp", "optimizer.damping=0.5"]).optimizer.damping == 0.5
    for optimizer, key in (("hf", "lambda_decay"), ("adam", "damping")):
        code, err = train(f"optimizer={optimizer}", f"optimizer.{key}=0.5")
        assert code == 2 and f"optimizer.{key}: unknown key" in err and "renamed" not in err


@pytest.mark.parametrize("path", ["/runs/kfra/evidence/curves__adam_lr2^-12_T1", "/runs/a b/c", "/runs/it's",
                                  "/runs/[x]{y},z=1", "/runs/back\\slash", "/runs/plain-name_1.2/~user+x:y@z",
                                  "/runs/$HOME/${x}"])
def test_path_overrides_survive_the_override_grammar(path: str) -> None:
    """A run folder named after a grid setting (``adam_lr2^-12``) broke ``train run_dir=...`` (issue 18's KFRA
    evidence run): the path comes back verbatim."""
    _, resolved = compose_config([path_override("run_dir", path)])
    assert resolved["run_dir"] == path
