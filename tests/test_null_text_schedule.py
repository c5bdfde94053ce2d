"""Null-text's per-step schedule (docs/design.md §4, SPEC §4): the learning rate decays by 1% per step index,
the early-stop threshold grows by 2e-5 per step index, and null-text-fast ends a step exactly when an Adam
step gains less than FAST_MIN_IMPROVEMENT of the loss (docs/inversion_speed.md)."""

from __future__ import annotations

import itertools
import types

import pytest
import torch

import inversion.loops.null_text as null_text_module
from inversion.loops.null_text import EPSILON_SLACK, FAST_MIN_IMPROVEMENT, _Step
from inversion.methods import METHODS
from tests.test_null_text_speed import STEPS, Pivot


@pytest.fixture(scope="module")
def pivot(tiny_pipe):
    return Pivot(tiny_pipe)


def test_the_learning_rate_decays_by_one_percent_per_step(pivot, monkeypatch):
    rates = []
    real_adam = torch.optim.Adam

    def recording_adam(params, lr):
        rates.append(lr)
        return real_adam(params, lr=lr)

    monkeypatch.setattr(torch.optim, "Adam", recording_adam)
    pivot.nti(learning_rate=0.1, num_inner_steps=1)
    assert rates == pytest.approx([0.1 * (1 - i / 100) for i in range(STEPS)], rel=1e-12)


def test_the_early_stop_threshold_grows_per_step_index(pivot, monkeypatch):
    thresholds = []
    real_optimize = _Step.optimize

    def recording_optimize(self, phi, lr, threshold, inner_steps, bar):
        thresholds.append(threshold)
        return real_optimize(self, phi, lr, threshold, inner_steps, bar)

    monkeypatch.setattr(_Step, "optimize", recording_optimize)
    pivot.nti(epsilon=1e-5, num_inner_steps=1)
    assert thresholds == pytest.approx([1e-5 + EPSILON_SLACK * i for i in range(STEPS)], rel=1e-12)
    assert EPSILON_SLACK == 2e-5  # the reference's slack (SPEC §4)


def test_null_text_fast_ends_a_step_exactly_when_an_adam_step_gains_too_little(pivot, monkeypatch):
    inner = 10
    losses: list[float] = []
    ends: list[int] = []
    real_mse = torch.nn.functional.mse_loss

    def recording_mse(a, b):
        loss = real_mse(a, b)
        losses.append(loss.item())
        return loss

    monkeypatch.setattr(null_text_module, "F", types.SimpleNamespace(mse_loss=recording_mse))
    METHODS["null-text-fast"].run(pivot.method_input(inner, 0.01, lambda step: ends.append(len(losses))))
    steps = [losses[a:b] for a, b in zip([0, *ends], ends)]
    assert len(steps) == STEPS
    stopped = 0
    for k, passes in enumerate(steps):
        ran_out = len(passes) == inner + 1  # every Adam step ran; the last loss is the DDIM step after them
        checked = passes[:inner] if ran_out else passes
        gains = [(before - after) / before for before, after in itertools.pairwise(checked)]
        last = len(gains) if ran_out else len(gains) - 1
        assert all(g >= FAST_MIN_IMPROVEMENT for g in gains[:last]), (k, gains)  # it went on while gaining
        if not ran_out:
            assert gains and gains[-1] < FAST_MIN_IMPROVEMENT, (k, gains)  # and stopped once it did not
            stopped += 1
    assert stopped >= 1  # the stall stop did fire in this run (a setup where it never fires tests nothing)
    assert any(len(p) > 3 for p in steps)  # and some step went on for several Adam steps
