"""SyncFreeLARS against lightly's LARS, the update it must reproduce."""

from __future__ import annotations

import pytest
import torch
from lightly.utils.lars import LARS
from torch import nn

from fkt_plugin.optimizers import SyncFreeLARS


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Linear(5, 3))
    with torch.no_grad():
        model[2].bias.zero_()  # |p| = 0 at the first step: the trust ratio does not apply
    return model


@pytest.mark.parametrize("nesterov", [False, True])
def test_steps_are_lightlys_lars_steps(nesterov: bool) -> None:
    ours, theirs = _model(), _model()
    groups = {}
    for name, model in (("ours", ours), ("theirs", theirs)):
        # lightly's usual split: weight decay on weights, none on BatchNorm and biases.
        decayed = [model[0].weight, model[2].weight, model[2].bias]
        plain = [model[0].bias, *model[1].parameters()]
        groups[name] = [{"params": decayed}, {"params": plain, "weight_decay": 0.0}]
    kwargs = {"lr": 0.3, "momentum": 0.9, "weight_decay": 1e-4, "nesterov": nesterov}
    optimizers = [SyncFreeLARS(groups["ours"], **kwargs), LARS(groups["theirs"], **kwargs)]
    gen = torch.Generator().manual_seed(1)
    for step in range(5):
        x = torch.randn(8, 6, generator=gen)
        for model, optimizer in zip((ours, theirs), optimizers, strict=True):
            optimizer.zero_grad()
            model(x).square().mean().backward()
            if step == 2:
                model[0].weight.grad.zero_()  # |g| = 0: the trust ratio does not apply
            optimizer.step()
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert float(ours[2].bias.abs().sum()) > 0  # the zero bias was updated, not left alone


def test_the_closure_runs_and_its_loss_is_returned() -> None:
    model = _model()
    optimizer = SyncFreeLARS(model.parameters(), lr=0.1)
    losses: list[float] = []

    def closure() -> float:
        optimizer.zero_grad()
        loss = model(torch.ones(4, 6)).square().sum()
        loss.backward()
        losses.append(float(loss))
        return losses[-1]

    returned = optimizer.step(closure)
    assert len(losses) == 1 and returned == losses[0]
