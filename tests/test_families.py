"""The SAE families: one registry, typed configs, and each family's loss and code against an
independent computation (brute force, finite differences or a hand-worked case)."""

import ast
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

import dfsae
from dfsae import losses
from dfsae.families.base import DeadLatents, FamilyConfig
from dfsae.families.jumprelu import JumpReLUFunction, StepFunction

PACKAGE = Path(dfsae.__file__).resolve().parent
NEEDS = {"topk": {"k": 3}, "batchtopk": {"k": 3}}


def build(name, input_dim=6, hidden_dim=8, seed=0, **options):
    config = dfsae.family(name).config.make(**{**NEEDS.get(name, {}), **options})
    return config.build(input_dim, hidden_dim, seed)


# -- One registry, no family names elsewhere ------------------------------------------------------
def family_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string constant in ``source`` that is a registered family's name."""
    return [(node.lineno, node.value) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and node.value in dfsae.FAMILIES]


def test_the_scan_finds_a_family_name_where_one_is_written():
    assert family_literals('if model.family == "topk":\n    pass\nx = f"{a}"') == [(1, "topk")]
    assert family_literals('OPTIONS = {"jumprelu": 1}') == [(1, "jumprelu")]
    assert family_literals('x = "topk sae"') == []


def test_no_family_name_is_written_outside_the_family_modules_and_the_registry():
    """A family module may name SAELens architectures (which share some names); nothing else in
    the library may name a family, so no code outside a family branches on one."""
    modules = PACKAGE / "families"
    allowed = {modules / "__init__.py"} | {modules / f"{name}.py" for name in dfsae.FAMILIES}
    found = []
    for path in sorted(set(PACKAGE.rglob("*.py")) - allowed):
        found += [f"{path.relative_to(PACKAGE.parent)}:{line}: {name!r}"
                  for line, name in family_literals(path.read_text())]
    assert found == [], "family names outside their modules:\n" + "\n".join(found)


def test_every_registered_family_is_complete():
    for name, spec in dfsae.FAMILIES.items():
        config = spec.config
        assert config.family == name and spec.model.family == name and spec.model.config_type is config
        assert issubclass(config, FamilyConfig) and spec.objective.config_type is config
        assert set(config.constraints) == set(config.options()), name   # every option declared once
        assert spec.knob in config.options() and spec.model.saelens_architecture
        assert getattr(dfsae, spec.model.__name__) is spec.model                # exported at the top level


@pytest.mark.parametrize("name", list(dfsae.FAMILIES))
def test_a_bad_option_is_refused_by_name_before_any_work(name):
    config = dfsae.family(name).config
    with pytest.raises(ValueError, match=f"unknown option.*'nonsense'.*{name}"):
        config.make(**NEEDS.get(name, {}), nonsense=1)
    for option, constraint in config.constraints.items():
        for bad in ("yes", -1, float("nan")):
            try:
                constraint.check(option, bad)
            except ValueError as err:
                assert option in str(err)
                with pytest.raises(ValueError, match=option):
                    config.make(**{**NEEDS.get(name, {}), option: bad})
                break
        else:
            pytest.fail(f"{name}.{option} accepts 'yes', -1 and NaN")


def test_required_options_and_widths_are_checked():
    with pytest.raises(ValueError, match="'topk' family needs k"):
        dfsae.TopKConfig.make()
    with pytest.raises(ValueError, match="k=9 must be <= hidden_dim=8"):
        dfsae.BatchTopKConfig(k=9).build(6, 8)
    with pytest.raises(ValueError, match="drop_last must be True or False"):
        dfsae.train(*build("standard"), torch.rand(10, 6), epochs=1, batch_size=2, drop_last="no")
    with pytest.raises(ValueError, match="pass SAEObjective()"):
        dfsae.train(build("standard")[0], dfsae.SAEObjective, torch.rand(10, 6), epochs=1)


# -- Standard and tied: the weighted L1 by hand ----------------------------------------------------
def test_the_tied_sae_reconstructs_through_the_transpose_and_weights_l1_by_row_norms():
    model, objective = build("tied", l1_coefficient=0.3)
    model.double()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        model.b_dec.copy_(torch.randn(6, generator=g, dtype=torch.float64))
        model.encoder.bias.copy_(torch.randn(8, generator=g, dtype=torch.float64))
    x = torch.randn(5, 6, generator=g, dtype=torch.float64)
    W, b, c = model.W.detach().numpy(), model.b_dec.detach().numpy(), model.encoder.bias.detach().numpy()
    xs = x.numpy()
    loss_by_hand = 0.0
    for row in xs:                                              # one input at a time, in numpy
        a = np.maximum(W @ (row - b) + c, 0)
        x_hat = W.T @ a + b
        penalty = sum(abs(a[j]) * np.linalg.norm(W[j]) for j in range(8))
        loss_by_hand += ((row - x_hat) ** 2).sum() + 0.3 * penalty
    loss, terms = objective(model, x)
    assert abs(float(loss.detach()) - loss_by_hand / 5) < 1e-10
    assert model.num_parameters() == 8 * 6 + 8 + 6


# -- TopK with AuxK --------------------------------------------------------------------------------
def test_auxk_loss_equals_a_brute_force_sum():
    g = torch.Generator().manual_seed(2)
    residual, pre = torch.randn(4, 5, generator=g, dtype=torch.float64), torch.randn(4, 7, generator=g,
                                                                                       dtype=torch.float64)
    decoder = torch.randn(5, 7, generator=g, dtype=torch.float64)
    dead = torch.tensor([True, False, True, True, False, True, False])
    for k_aux in (1, 2, 10):
        total = 0.0
        for i in range(4):
            candidates = sorted((float(pre[i, j]), j) for j in range(7) if dead[j])[::-1][:k_aux]
            e_hat = sum(value * decoder[:, j] for value, j in candidates)
            total += float(((residual[i] - e_hat) ** 2).sum())
        assert abs(float(losses.auxk_loss(residual, pre, dead, decoder, k_aux)) - total / 4) < 1e-10
    assert float(losses.auxk_loss(residual, pre, torch.zeros(7, dtype=torch.bool), decoder, 3)) == 0.0


def test_dead_latents_count_inputs_since_each_latent_last_fired():
    dead = DeadLatents(window=5)
    assert dead.mask() is None
    dead.observe(torch.tensor([[1.0, 0, 0], [0, 0, 0], [0, 0, 2]]))    # 3 inputs: 0 and 2 fire
    assert dead.since_fired.tolist() == [0, 3, 0] and dead.mask().tolist() == [False, False, False]
    dead.observe(torch.tensor([[0.0, 0, 1], [0, 0, 0]]))              # 2 more: only 2 fires
    assert dead.since_fired.tolist() == [2, 5, 0] and dead.mask().tolist() == [False, True, False]
    dead.reset()
    assert dead.mask() is None


def test_auxk_gives_dead_latents_a_gradient_and_plain_topk_does_not():
    x = torch.rand(16, 6, generator=torch.Generator().manual_seed(3))
    for aux, expect in ((1 / 32, True), (0.0, False)):
        model, objective = build("topk", k=1, aux_coefficient=aux, dead_window=1)
        objective(model, x)                                  # first call: every latent that fired is alive
        dead = objective.dead.mask()
        loss, _ = objective(model, x)
        loss.backward()
        moved = model.encoder.weight.grad[dead].abs().sum(1) > 0
        assert dead.any() and bool(moved.all()) is expect


def test_auxk_lowers_topk_dead_count_where_it_was_high(digits):
    """At K = 256, k = 8 on the digits plain TopK loses most of its latents; AuxK (window 10,000
    inputs, 2.5 epochs here) revives many of them."""
    dead = {}
    for aux in (0.0, 1 / 32):
        model, objective = dfsae.TopKConfig(k=8, aux_coefficient=aux).build(784, 256, seed=0)
        dfsae.train(model, objective, digits.x_train, epochs=10, batch_size=128, progress=False)
        dead[aux] = int(dfsae.metrics.dead_units(dfsae.metrics.encode(model, digits.x_test)).sum())
    assert dead[0.0] > 100 and dead[1 / 32] < 0.6 * dead[0.0], dead


# -- BatchTopK -------------------------------------------------------------------------------------
def test_batchtopk_keeps_the_k_times_b_largest_entries_of_the_batch():
    model = build("batchtopk", k=3)[0]
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(4))
    codes = model.batch_activate(z)
    flat = sorted(((float(v), i) for i, v in enumerate(z.flatten()) if v > 0), reverse=True)[:15]
    expected = torch.zeros(40)
    for value, i in flat:
        expected[i] = value
    assert torch.equal(codes.flatten(), expected)
    assert (codes != 0).sum() == min(15, int((z > 0).sum()))


def test_batchtopk_threshold_starts_at_the_smallest_kept_value_then_averages():
    model = build("batchtopk", k=1)[0]
    z = torch.tensor([[0.5, -1.0, 2.0], [0.1, 0.7, 0.0]])
    assert torch.equal(model.activate(z), torch.relu(z))             # before training θ = 0: ReLU(z)
    model.update_threshold(torch.tensor([[0.0, 2.0], [0.4, 0.0]]), momentum=0.1)
    assert float(model.threshold) == pytest.approx(0.4)
    model.update_threshold(torch.tensor([[1.0, 0.0]]), momentum=0.1)
    assert float(model.threshold) == pytest.approx(0.9 * 0.4 + 0.1 * 1.0)
    assert torch.equal(model.activate(z), torch.tensor([[0.5, 0.0, 2.0], [0.0, 0.7, 0.0]]))


# -- JumpReLU: the straight-through estimators ----------------------------------------------------
def smoothed_step(z, theta, eps):
    """H(z − θ) smoothed by the rectangle kernel of width ε: clip((z − θ)/ε + ½, 0, 1)."""
    return np.clip((z - theta) / eps + 0.5, 0, 1)


def test_the_step_estimator_is_the_derivative_of_the_kernel_smoothed_step():
    rng = np.random.default_rng(5)
    z = rng.normal(size=(50, 3))
    theta, eps, h = np.array([0.1, -0.2, 0.3]), 0.4, 1e-6
    t = torch.tensor(theta, requires_grad=True)
    StepFunction.apply(torch.tensor(z), t, eps).sum().backward()
    for j in range(3):
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        numeric = (smoothed_step(z, up, eps).sum() - smoothed_step(z, down, eps).sum()) / (2 * h)
        assert abs(float(t.grad[j]) - numeric) < 1e-6


def test_the_jumprelu_estimator_by_hand():
    z = torch.tensor([[0.50, 0.10], [0.52, -0.3], [0.70, 0.12]], requires_grad=True)
    theta = torch.tensor([0.5, 0.1], requires_grad=True)
    a = JumpReLUFunction.apply(z, theta, 0.1)
    assert torch.equal(a.detach(), torch.tensor([[0.0, 0.0], [0.52, 0.0], [0.70, 0.12]]))
    upstream = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    a.backward(upstream)
    # θ₀ = 0.5: inputs 0.50 and 0.52 are within ε/2 = 0.05 → −(0.5/0.1)(1 + 3) = −20;
    # θ₁ = 0.1: 0.10 and 0.12 are within → −(0.1/0.1)(2 + 6) = −8.
    assert torch.allclose(theta.grad, torch.tensor([-20.0, -8.0]))
    assert torch.equal(z.grad, upstream * (z.detach() > theta.detach()))   # H(z − θ) to z


def test_jumprelu_objective_moves_thresholds_only_through_the_l0_term():
    model, objective = build("jumprelu", l0_coefficient=1.0, bandwidth=10.0, initial_threshold=0.2)
    x = torch.rand(20, 6, generator=torch.Generator().manual_seed(6))
    _, terms = objective(model, x)
    terms["l0"].backward()
    assert model.threshold.grad.abs().sum() > 0 and model.encoder.weight.grad.abs().sum() == 0
    with torch.no_grad():
        model.threshold.fill_(-1.0)
    model.after_step()
    assert torch.equal(model.threshold.detach(), torch.zeros(8))


# -- Every family trains through the one loop -----------------------------------------------------
@pytest.mark.parametrize("name", list(dfsae.FAMILIES))
def test_every_family_trains_and_is_evaluated(name, digits):
    config = dfsae.family(name).config.make(**NEEDS.get(name, {}))
    model, objective = config.build(784, 32, seed=0)
    history = dfsae.train(model, objective, digits.x_train[:512], epochs=2, batch_size=64, progress=False)
    assert np.isfinite(history["total"]).all()
    small = dfsae.Dataset(digits.x_train[:512], digits.y_train[:512], digits.x_test[:256],
                          digits.y_test[:256], "digits")
    result = dfsae.evaluate(model, small, probe=False)
    assert ("fvu_own" in result) is model.has_decoder
    assert ("resp_entropy" in result) is model.codes_are_energies


def test_batch_order_and_initialisation_are_deterministic(digits):
    for name in dfsae.FAMILIES:
        runs = []
        for _ in range(2):
            model, objective = dfsae.family(name).config.make(**NEEDS.get(name, {})).build(784, 16, seed=4)
            dfsae.train(model, objective, digits.x_train[:256], epochs=1, batch_size=64, seed=2,
                        progress=False)
            runs.append(model.W.detach().clone())
        assert torch.equal(*runs), name


def test_families_are_listed_once_in_their_order():
    assert list(dfsae.FAMILIES) == list(dict.fromkeys(dfsae.FAMILIES))
    assert all(a != b for a, b in itertools.combinations([f.title for f in dfsae.FAMILIES.values()], 2))
