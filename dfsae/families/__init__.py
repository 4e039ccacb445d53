"""The SAE families, one module each, and their one registry.

Each module (for example :mod:`~dfsae.families.decoder_free`) holds a
family's typed config, model, objective, code reading and SAELens mapping, and ends with
``FAMILY``, its :class:`~dfsae.families.base.Family`. :data:`FAMILIES` maps each family's name to
it; the rest of the library looks families up here and never branches on a name.
"""

from __future__ import annotations

import importlib

from .base import SAE, ConfiguredObjective, DecoderSAE, Family, FamilyConfig, Objective

# The registry: one entry per family module, in the order tables and legends list them.
MODULES = ("decoder_free", "standard", "tied", "topk", "batchtopk", "jumprelu")
"""The family modules, one entry each: adding a family means writing its module and adding it here."""

FAMILIES: dict[str, Family] = {}
"""Every registered family by its one name, in the order of ``MODULES``."""
__all__ = ["FAMILIES", "family", "family_of", "SAE", "DecoderSAE", "Family", "FamilyConfig", "Objective",
           "ConfiguredObjective"]
for _name in MODULES:
    _module = importlib.import_module(f"{__name__}.{_name}")
    FAMILIES[_module.FAMILY.name] = _module.FAMILY
    globals().update({symbol: getattr(_module, symbol) for symbol in _module.__all__})
    __all__ += _module.__all__


def family(name: str) -> Family:
    """The registered family called ``name``; an unknown name is refused with the valid ones."""
    if not isinstance(name, str) or name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; choose one of {sorted(FAMILIES)}")
    return FAMILIES[name]


def family_of(model) -> Family:
    """The registered family of ``model`` (its class must be the family's model class)."""
    found = FAMILIES.get(getattr(model, "family", None))
    if found is None or type(model) is not found.model:
        raise ValueError(f"{type(model).__name__} is not a registered family's model; expected one of "
                         f"{', '.join(f.model.__name__ for f in FAMILIES.values())}")
    return found
