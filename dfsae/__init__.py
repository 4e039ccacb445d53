"""dfsae — decoder-free sparse autoencoders derived from implicit EM.

Quick start::

    import dfsae
    data = dfsae.load_dataset("mnist5k")
    model = dfsae.DecoderFreeSAE(784, 64, seed=0)
    history = dfsae.train(model, dfsae.DecoderFreeObjective(), data.x_train, epochs=20)
    print(dfsae.evaluate(model, data))

Every SAE family (its config, model and objective) is exported here from its module in
:mod:`dfsae.families`; :data:`dfsae.FAMILIES` is the registry.
"""

from . import browser, checkpoint, evals, families
from .data import Dataset, load_activations, load_dataset
from .families import *  # noqa: F403 (every family's config, model and objective)
from .families import FAMILIES, family
from .losses import decorrelation_loss, lse_loss, variance_loss, weight_orthogonality_loss
from .metrics import evaluate
from .training import History, train

__version__ = "0.1.0"

__all__ = [
    "browser", "checkpoint", "evals", "families", "Dataset", "load_activations", "load_dataset", "evaluate",
    "FAMILIES",
    "family",
    "decorrelation_loss", "lse_loss", "variance_loss", "weight_orthogonality_loss", "History", "train",
    *families.__all__,
]
