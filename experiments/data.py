"""Real data shipped inside scikit-learn (nothing is downloaded): digits and iris."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from sklearn import datasets
from sklearn import model_selection
from sklearn import preprocessing


class Split(NamedTuple):
    """A standardised train/test split as JAX arrays (features float32, labels int32)."""

    x_train: jnp.ndarray
    y_train: jnp.ndarray
    x_test: jnp.ndarray
    y_test: jnp.ndarray
    num_classes: int


def load(name: str, *, seed: int = 0, test_fraction: float = 0.25) -> Split:
    """Loads ``"digits"`` (1,797 8x8 images, 10 classes) or ``"iris"`` (150 flowers, 3 classes).

    The split is stratified and reproducible from ``seed``; features are
    standardised with statistics of the training part only.
    """
    loaders = {"digits": datasets.load_digits, "iris": datasets.load_iris}
    if name not in loaders:
        raise ValueError(f"name must be one of {sorted(loaders)}; got {name!r}.")
    x, y = loaders[name](return_X_y=True)
    x_train, x_test, y_train, y_test = model_selection.train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=seed)
    scaler = preprocessing.StandardScaler().fit(x_train)
    as_x = lambda a: jnp.asarray(scaler.transform(a), jnp.float32)
    as_y = lambda a: jnp.asarray(a, jnp.int32)
    return Split(as_x(x_train), as_y(y_train), as_x(x_test), as_y(y_test),
                 int(np.unique(y).size))
