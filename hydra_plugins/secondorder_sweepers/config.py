"""The sweeper's configuration, registered in Hydra's ConfigStore (group ``hydra/sweeper``).

No ``from __future__ import annotations`` here: Hydra's plugin scan runs this module outside ``sys.modules``,
where dataclasses cannot resolve string annotations.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf


@dataclass
class SearchSweeperConf:
    """``hydra.sweeper.*`` of the grid / random / biased random search sweeper.

    ``params`` maps a Hydra key to its range ``{low, high, log, integer}`` (``log``: uniform in log units);
    command-line ``key=interval(low,high)`` (``tag(log, interval(…))``, ``tag(int, …)``) adds a dimension too.
    ``criterion`` is a path into each job's ``summary.json`` (lower is better); ``history`` the JSON-lines record
    that a re-run resumes from (default ``<hydra.sweep.dir>/history.jsonl``).
    """

    _target_: str = "hydra_plugins.secondorder_sweepers.search_sweeper.SearchSweeper"
    method: str = "biased"  # grid | random | biased
    n_trials: int = 20  # grid: the first n_trials points of the grid (all of them when it has fewer)
    seed: int = 0
    batch_size: int = 1  # jobs per launcher call; proposals in a batch see the history before it
    criterion: str = "best.train_error"
    grid_points: int = 5  # per dimension, for method=grid
    history: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


def sweeper_node(method: str) -> object:
    """The config of one named sweeper; ``params`` accepts new keys (``hydra.sweeper.params={a.b: {…}}``) although
    Hydra locks the rest of its config."""
    node = OmegaConf.structured(SearchSweeperConf(method=method))
    OmegaConf.set_struct(node.params, False)
    return node


SWEEPERS = {"biased_random": "biased", "random_search": "random", "grid_search": "grid"}
for _name, _method in SWEEPERS.items():
    ConfigStore.instance().store(group="hydra/sweeper", name=_name, node=sweeper_node(_method), provider="secondorder")
