"""dfsae — decoder-free sparse autoencoders derived from implicit EM.

Quick start::

    import dfsae
    data = dfsae.load_dataset("mnist5k")
    model = dfsae.DecoderFreeSAE(784, 64, seed=0)
    history = dfsae.train(model, dfsae.DecoderFreeObjective(), data.x_train, epochs=20)
    print(dfsae.evaluate(model, data))
"""

from . import checkpoint
from .data import Dataset, load_activations, load_dataset
from .losses import decorrelation_loss, lse_loss, variance_loss, weight_orthogonality_loss
from .metrics import evaluate
from .model import DecoderFreeSAE, StandardSAE, TopKSAE
from .objective import DecoderFreeObjective, Objective, SAEObjective, TopKObjective
from .training import History, train

__version__ = "0.1.0"

__all__ = [
    "checkpoint", "Dataset", "load_activations", "load_dataset", "evaluate", "DecoderFreeSAE",
    "StandardSAE", "TopKSAE",
    "DecoderFreeObjective", "Objective", "SAEObjective", "TopKObjective", "decorrelation_loss", "lse_loss",
    "variance_loss", "weight_orthogonality_loss", "History", "train",
]
