"""The standalone joint loss against an independent computation, and the method that uses it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fkt_plugin.losses import JointLoss, masked_cross_entropy
from tests.helpers import nt_xent


def _inputs(n: int = 12, unlabelled_every: int = 3):
    gen = torch.Generator().manual_seed(1)
    z0, z1 = torch.randn(n, 16, generator=gen), torch.randn(n, 16, generator=gen)
    logits = torch.randn(n, 5, generator=gen, requires_grad=True)
    targets = torch.randint(0, 5, (n,), generator=gen)
    targets[::unlabelled_every] = -1
    return z0, z1, logits, targets


def test_joint_loss_is_the_weighted_sum_of_its_terms() -> None:
    z0, z1, logits, targets = _inputs()
    out = JointLoss(temperature=0.2, ssl_weight=0.5, sup_weight=3.0)(z0, z1, logits, targets)
    labelled = targets >= 0
    ce = F.cross_entropy(logits[labelled], targets[labelled])
    assert out.ssl.item() == pytest.approx(nt_xent(z0, z1, 0.2).item(), rel=1e-5)
    assert out.supervised.item() == pytest.approx(ce.item(), rel=1e-6)
    assert out.loss.item() == pytest.approx(0.5 * out.ssl.item() + 3.0 * ce.item(), rel=1e-6)


def test_unlabelled_rows_get_no_supervised_gradient() -> None:
    z0, z1, logits, targets = _inputs()
    JointLoss()(z0, z1, logits, targets).loss.backward()
    assert (logits.grad[targets < 0] == 0).all() and (logits.grad[targets >= 0] != 0).any()
    none = torch.full_like(targets, -1)
    loss = masked_cross_entropy(logits, none)
    assert loss.item() == 0.0 and loss.requires_grad


def test_class_weights_weigh_the_supervised_term() -> None:
    z0, z1, logits, targets = _inputs()
    weights = torch.tensor([1.0, 2.0, 0.5, 1.0, 4.0])
    out = JointLoss(class_weights=weights)(z0, z1, logits, targets)
    labelled = targets >= 0
    expected = F.cross_entropy(logits[labelled], targets[labelled], weight=weights)
    assert out.supervised.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"temperature": 0.0}, "temperature=0.0 must be > 0"),
    ({"ssl_weight": 0.0, "sup_weight": 0.0}, "are both 0: nothing trains"),
    ({"ssl_weight": -1.0}, "ssl_weight=-1.0 must be >= 0"),
])
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JointLoss(**kwargs)


def test_the_lightly_example_trains_a_few_steps(fmnist_dir, capsys) -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "lightly_fkt_joint.py"
    spec = importlib.util.spec_from_file_location("lightly_fkt_joint", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    torch.manual_seed(0)
    loss = example.main(["--data", str(fmnist_dir), "--max-steps", "3", "--batch-size", "32",
                         "--label-fraction", "0.5"])
    assert torch.isfinite(torch.tensor(loss))
    assert "epoch 0: loss" in capsys.readouterr().out


def test_the_fkt_joint_method_computes_its_loss_with_joint_loss(make_cfg) -> None:
    from fkt_plugin import METHODS

    model = METHODS["fkt_joint"](make_cfg("fkt_joint", "method_kwargs.ssl_weight=0.25",
                                          "method_kwargs.sup_weight=4.0"))
    assert isinstance(model.criterion, JointLoss)
    assert (model.criterion.ssl_weight, model.criterion.sup_weight) == (0.25, 4.0)
