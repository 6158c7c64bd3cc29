"""Reading the MATLAB ``.mat`` files in which the original autoencoder datasets were released."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from secondorder.errors import DataError


def load_mat_variables(path: Path, names: list[str], *, how_to_get: str) -> dict[str, np.ndarray]:
    """Return the named variables of a MATLAB file, or raise a one-line :class:`DataError`.

    ``how_to_get`` finishes the message when the file is missing (where to download it).
    """
    if not path.exists():
        raise DataError(f"data file {path} not found; {how_to_get}")
    try:
        import scipy.io
    except ImportError as exc:
        raise DataError(
            f"reading {path.name} needs scipy: pip install 'secondorder[mat]' (or pip install scipy)"
        ) from exc
    try:
        contents = scipy.io.loadmat(str(path), variable_names=names)
    except NotImplementedError as exc:  # MATLAB v7.3 files are HDF5
        raise DataError(
            f"{path} is a MATLAB v7.3 (HDF5) file; re-save it in MATLAB with save(..., '-v7')"
        ) from exc
    except (ValueError, OSError) as exc:
        raise DataError(f"{path} is not a readable MATLAB file ({exc})") from exc
    missing = [n for n in names if n not in contents]
    if missing:
        raise DataError(f"{path} lacks the variable(s) {', '.join(missing)}; is it the right file?")
    return {n: np.asarray(contents[n]) for n in names}


def as_rows(array: np.ndarray, n_features: int, *, what: str) -> np.ndarray:
    """Orient a 2-D array as cases × features (MATLAB files store either way)."""
    if array.ndim != 2 or n_features not in array.shape:
        raise DataError(f"{what} has shape {array.shape}; expected N×{n_features} or {n_features}×N")
    return array if array.shape[1] == n_features else array.T
