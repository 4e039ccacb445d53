"""The notebooks' papermill parameters: each name checked once, by one rule.

A notebook declares its parameters in its ``parameters`` cell and nowhere else. Its first
hidden cell calls :func:`notebook_parameters` on its globals: that collects every parameter
(including any papermill injected), checks each against its rule in ``PARAMETERS``, and
refuses a name with no rule — a misspelling such as ``-p lamda_var 1`` — with the list of
valid names, before any work is done.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .. import validation
from ..data import DATASETS
from ..families.decoder_free import ACTIVATIONS
from ..training import OPTIMIZERS

Rule = Callable[[str, object], object]


def _integer(minimum: int = 1) -> Rule:
    return lambda name, value: validation.positive_int(name, value, minimum=minimum)


def _number(allow_zero: bool = False) -> Rule:
    return lambda name, value: validation.positive_float(name, value, allow_zero=allow_zero)


def _integers(minimum: int = 1) -> Rule:
    return lambda name, value: validation.integer_list(name, value, minimum=minimum)


def _numbers(allow_zero: bool = False) -> Rule:
    def check(name, value):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"{name} must be a non-empty list of numbers, got {value!r}; papermill's -p "
                             f"passes text, so give lists with -y, e.g. `-y '{name}: [0.1, 1.0]'`; "
                             "python -m dfsae.paper.reproduce takes a Python literal, "
                             f"`-p {name} '[0.1, 1.0]'`")
        return [validation.positive_float(name, v, allow_zero=allow_zero) for v in value]
    return check


def _weight(name, value):
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be a number >= 0, got the string {value!r}")
    return validation.positive_float(name, value, allow_zero=True)


def _one_of(*options) -> Rule:
    return lambda name, value: validation.choice(name, value, options)


def _results_folder(name, value):
    """'' writes no result files; anything else must be a writable folder."""
    return value if value == "" else validation.writable_folder(name, value)


def _cells(name, value):
    """[[layer, dictionary width K, TopK's k], ...]: three positive integers per cell."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{name} must be a non-empty list of [layer, K, k] cells, got {value!r}; e.g. "
                         f"`-p {name} '[[3, 3072, 320]]'` with python -m dfsae.paper.reproduce")
    out = []
    for i, cell in enumerate(value):
        if not isinstance(cell, (list, tuple)) or len(cell) != 3:
            raise ValueError(f"{name}[{i}] must be [layer, K, k], three integers; got {cell!r}")
        from ..activations import NUM_LAYERS

        layer = validation.positive_int(f"{name}[{i}] layer", cell[0], minimum=0)
        K = validation.positive_int(f"{name}[{i}] K", cell[1])
        k = validation.positive_int(f"{name}[{i}] k", cell[2])
        if layer > NUM_LAYERS or k > K:
            raise ValueError(f"{name}[{i}] = {cell!r}: the layer must be at most {NUM_LAYERS} (MiniLM-L6) "
                             "and TopK's k at most the dictionary width K")
        out.append([layer, K, k])
    return out


def _sweeps(name, value):
    """{family: [values of its sparsity knob]}: every family with a decoder, each value made into
    the family's config (so a k of 0 or a negative λ is refused here, before any training)."""
    from .. import families

    if not isinstance(value, dict) or not value:
        raise ValueError(f"{name} must be a non-empty dict {{family: [knob values]}}, got {value!r}; e.g. "
                         f"`-p {name} '{{\"topk\": [8, 16, 32]}}'` with python -m dfsae.paper.reproduce")
    for fam, knobs in value.items():
        spec = families.family(fam)
        if not spec.model.has_decoder:
            raise ValueError(f"{name}[{fam!r}]: a sweep is of a family with a decoder; the decoder-free "
                             "model's balance is swept by `balances`")
        if isinstance(knobs, (str, bytes)) or not isinstance(knobs, (list, tuple)) or len(knobs) < 3:
            raise ValueError(f"{name}[{fam!r}] must list at least 3 values of {spec.knob}, got {knobs!r}")
        for v in knobs:
            try:
                spec.config.make(**{spec.knob: v})
            except (TypeError, ValueError) as err:
                raise ValueError(f"{name}[{fam!r}]: {err}") from None
    return value


def _sweeps_by_dim(name, value):
    """{K: sweeps}: the sweeps (as :func:`_sweeps`) at each dictionary size K."""
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{name} must be a non-empty dict {{K: {{family: [knob values]}}}}, got {value!r}")
    for k, sweeps in value.items():
        try:
            width = int(k)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: the key {k!r} is not a dictionary size (an integer)") from None
        validation.positive_int(f"{name} key", width)
        _sweeps(f"{name}[{k!r}]", sweeps)
    return value


def _family_options(name, value):
    """{family: {option: value}}: options every run of that family gets, each checked by the
    family's config."""
    from .. import families

    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a dict {{family: {{option: value}}}}, got {value!r}")
    for fam, options in value.items():
        spec = families.family(fam)
        if not isinstance(options, dict):
            raise ValueError(f"{name}[{fam!r}] must be a dict of {spec.title} options, got {options!r}")
        try:
            spec.config.make(**{spec.knob: getattr(spec.config, spec.knob, None) or 1, **options})
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name}[{fam!r}]: {err}") from None
    return value


def _family_options_by_dim(name, value):
    """{K: family_options}: the options (as :func:`_family_options`) at each dictionary size K."""
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a dict {{K: {{family: {{option: value}}}}}}, got {value!r}")
    for k, options in value.items():
        try:
            int(k)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: the key {k!r} is not a dictionary size (an integer)") from None
        _family_options(f"{name}[{k!r}]", options)
    return value


def _existing_file(name, value):
    if not isinstance(value, str) or not Path(value).is_file():
        raise ValueError(f"{name}={value!r} is not a file; run the benchmark that writes it (benchmarks/) "
                         "to create it, or pass the path of a stored benchmark JSON")
    return value


PARAMETERS: dict[str, Rule] = {
    # data and model
    "dataset": _one_of(*DATASETS),
    "hidden_dim": _integer(),
    "dims": _integers(),
    "activation": _one_of(*ACTIVATIONS),
    # training budget
    "epochs": _integer(),
    "long_epochs": _integer(),
    "train_epochs": _integer(),
    "batch_size": _integer(minimum=2),
    "batches": _integers(minimum=2),
    "steps": _integer(),
    "lr": _number(),
    "optimizer": _one_of(*OPTIMIZERS),
    "seed": _integer(minimum=0),
    "seeds": _integers(minimum=0),
    "device": validation.device,
    # loss weights and sweeps
    "lambda_lse": _weight,
    "lambda_var": _weight,
    "lambda_tc": _weight,
    "lambda_wr": _weight,
    "l1_coefficient": _weight,
    "l1_sweep": _numbers(allow_zero=True),
    "l1_weighting": _one_of("plain", "decoder_norm"),
    "balances": _numbers(),
    "sweeps": _sweeps,
    "sweeps_by_dim": _sweeps_by_dim,
    "sweep_seeds": _integers(minimum=0),
    "family_options": _family_options,
    "family_options_by_dim": _family_options_by_dim,
    "stored_runs": _one_of("use", "extend", "refresh"),
    "topk_sweep": _integers(),
    "topk_k": _integer(),
    "grid": _numbers(),
    "lr_sweep": _numbers(),
    "lr_sweep_dim": _integer(),
    "adam_lrs": _numbers(),
    "sgd_lrs": _numbers(),
    "compare_sum_reduction": validation.boolean,
    "long_budget_factor": _integer(minimum=2),
    "long_budget_dim": _integer(),
    "rerun_long_budget": validation.boolean,
    "n_probes": _integer(),
    "probe_counts": _integers(),
    # measurement
    "n_samples": _integer(),
    "quality_dims": _integers(),
    "quality_epochs": _integer(),
    "equivalence_dims": _integers(),
    "equivalence_probes": _integer(),
    "equivalence_seeds": _integers(minimum=0),
    "benchmark_file": _existing_file,
    "gradient_file": _existing_file,
    "profile_file": _existing_file,
    # the language model
    "layer": _integer(minimum=0),
    "lm_hidden_dim": _integer(),
    "lm_batches": _integers(minimum=2),
    "lm_steps": _integer(),
    "cells": _cells,
    "balance": _weight,
    "check_tokens": _integer(),
    "check_cell": _integer(minimum=0),
    "sweep_cell": _integer(minimum=0),
    "n_tokens": _integer(),
    "seq_len": _integer(),
    "posthoc_tokens": _integer(),
    "test_tokens": _integer(),
    "fidelity_texts": _integer(minimum=2),
    "features_shown": _integer(),
    "contexts_shown": _integer(),
    "browser_latents": _integer(),
    "cache_dir": validation.writable_folder,
    # output
    "results_dir": _results_folder,
}
"""The rule for every notebook parameter by name; a notebook and ``reproduce`` apply the same one."""

_PARAMETER_TYPES = (str, int, float, bool, list, tuple, dict, type(None))
_INTERPRETER_NAMES = {"In", "Out", "exit", "quit", "get_ipython"}


def validate_parameters(parameters: dict) -> dict:
    """Check every parameter by its rule; refuse a name that has none. Returns ``parameters``."""
    unknown = sorted(set(parameters) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; valid names: {', '.join(sorted(PARAMETERS))}")
    for name, value in parameters.items():
        PARAMETERS[name](name, value)
    return parameters


def notebook_parameters(namespace: dict) -> dict:
    """The parameters a notebook was run with, from its globals, validated.

    Call it in the first cell after the ``parameters`` cell: at that point the globals hold the
    declared parameters, whatever papermill injected, imported modules and the interpreter's own
    names. Everything of a plain value type (numbers, strings, lists, …) whose name does not
    start with ``_`` is taken to be a parameter, so that cell must not import constants of those
    types by name (an unknown name is refused, which shows such a mistake at once).
    """
    parameters = {name: value for name, value in namespace.items()
                  if not name.startswith("_") and name not in _INTERPRETER_NAMES
                  and isinstance(value, _PARAMETER_TYPES)}
    return validate_parameters(parameters)
