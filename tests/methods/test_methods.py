"""Each method's outputs, and its loss against an independent computation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fkt_plugin import METHODS
from fkt_plugin.errors import NonFiniteLossError
from tests.helpers import nt_xent, relative_difference


def batch(num_views: int = 3, n: int = 16, labelled_every: int = 2):
    gen = torch.Generator().manual_seed(0)
    views = [torch.randn(n, 1, 28, 28, generator=gen) for _ in range(num_views)]
    targets = torch.randint(0, 10, (n,), generator=gen)
    targets[torch.arange(n) % labelled_every != 0] = -1
    return torch.arange(n), views, targets


@pytest.mark.parametrize("recipe", ["fkt_joint", "simclr", "byol", "supervised"])
def test_forward_keys_and_shapes(make_cfg, recipe: str) -> None:
    model = METHODS[recipe](make_cfg(recipe, "backbone.kwargs.width=8"))
    out = model(torch.randn(4, 1, 28, 28))
    assert model.features_dim == 32  # 4 * width, read off the backbone
    assert out["feats"].shape == (4, 32) and out["logits"].shape == (4, 10)
    if recipe in ("fkt_joint", "simclr"):
        assert out["z"].shape == (4, model.cfg.method_kwargs.proj_output_dim)
    if recipe == "byol":
        assert out["p"].shape == out["z"].shape == (4, model.cfg.method_kwargs.proj_output_dim)


def test_fkt_joint_loss_is_the_weighted_sum_of_nt_xent_and_labelled_cross_entropy(
        make_cfg) -> None:
    model = METHODS["fkt_joint"](make_cfg("fkt_joint", "method_kwargs.ssl_weight=0.3",
                                          "method_kwargs.sup_weight=2.0"))
    _, views, targets = batch()
    loss = model.training_step((None, views, targets), 0)
    with torch.no_grad():
        f0, f1, f2 = model.backbone(torch.cat(views)).chunk(3)
        z0, z1 = model.projector(torch.cat([f0, f1])).chunk(2)
        labelled = targets >= 0
        ce = F.cross_entropy(model.classifier(f2)[labelled], targets[labelled])
        expected = 0.3 * nt_xent(z0, z1, 0.5) + 2.0 * ce
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_a_batch_without_labels_is_a_valid_ssl_only_step(make_cfg) -> None:
    model = METHODS["fkt_joint"](make_cfg("fkt_joint"))
    _, views, targets = batch(labelled_every=10**6)
    targets[:] = -1
    loss = model.training_step((None, views, targets), 0)
    loss.backward()
    with torch.no_grad():
        f0, f1, _ = model.backbone(torch.cat(views)).chunk(3)
        z0, z1 = model.projector(torch.cat([f0, f1])).chunk(2)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(nt_xent(z0, z1, 0.5).item(), rel=1e-5)
    assert model.classifier.weight.grad.abs().max() == 0


def _encoder_step(model, views, targets) -> list[torch.Tensor]:
    before = [p.detach().clone() for p in model.backbone.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.zero_grad()
    model.training_step((None, views, targets), 0).backward()
    optimizer.step()
    return [p.detach() - b for p, b in zip(model.backbone.parameters(), before, strict=True)]


def test_one_step_moves_the_encoder_by_both_terms(make_cfg) -> None:
    base = METHODS["fkt_joint"](make_cfg("fkt_joint"))
    _, views, targets = batch()
    deltas = {}
    for name, (ssl_w, sup_w) in {"both": (1.0, 1.0), "ssl": (1.0, 0.0),
                                 "sup": (0.0, 1.0)}.items():
        model = METHODS["fkt_joint"](make_cfg("fkt_joint", f"method_kwargs.ssl_weight={ssl_w}",
                                              f"method_kwargs.sup_weight={sup_w}"))
        model.load_state_dict(base.state_dict())
        deltas[name] = torch.cat([d.flatten() for d in _encoder_step(model, views, targets)])
    assert deltas["ssl"].norm() > 0 and deltas["sup"].norm() > 0
    assert relative_difference(deltas["both"], deltas["ssl"] + deltas["sup"]) < 1e-4
    assert relative_difference(deltas["both"], deltas["ssl"]) > 1e-2


def test_simclr_online_classifier_does_not_train_the_encoder(make_cfg) -> None:
    model = METHODS["simclr"](make_cfg("simclr"))
    _, views, targets = batch(num_views=2)
    model.training_step((None, views, targets), 0).backward()
    grads = [p.grad.clone() for p in model.backbone.parameters()]
    assert model.classifier.weight.grad.abs().max() > 0
    model.zero_grad()
    f0, f1 = model.backbone(torch.cat(views)).chunk(2)
    z0, z1 = model.projector(torch.cat([f0, f1])).chunk(2)
    nt_xent(z0, z1, model.cfg.method_kwargs.temperature).backward()
    want = torch.cat([p.grad.flatten() for p in model.backbone.parameters()])
    assert relative_difference(torch.cat([g.flatten() for g in grads]), want) < 1e-4


def test_supervised_loss_is_cross_entropy_on_the_labelled_images(make_cfg) -> None:
    model = METHODS["supervised"](make_cfg("supervised"))
    _, views, targets = batch(num_views=1)
    loss = model.training_step((None, views, targets), 0)
    with torch.no_grad():
        logits = model.classifier(model.backbone(views[0]))
    labelled = targets >= 0
    assert loss.item() == pytest.approx(
        F.cross_entropy(logits[labelled], targets[labelled]).item(), rel=1e-5)


def test_byol_loss_and_momentum_update(make_cfg) -> None:
    model = METHODS["byol"](make_cfg("byol", "method_kwargs.proj_hidden_dim=32",
                                     "method_kwargs.pred_hidden_dim=32"))
    _, views, targets = batch(num_views=2)
    feats = list(model.backbone(torch.cat(views)).chunk(2))
    loss, logs = model.ssl_loss(feats, views, targets)
    with torch.no_grad():
        p0, p1 = model.predictor(model.projector(torch.cat(feats))).chunk(2)
        t0, t1 = model.momentum_projector(model.momentum_backbone(torch.cat(views))).chunk(2)
    expected = -0.5 * (F.cosine_similarity(p0, t1).mean() + F.cosine_similarity(p1, t0).mean())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert "train_neg_cos_sim" in logs
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(1.0)
    target_before = [p.clone() for p in model.momentum_backbone.parameters()]
    model.momentum = lambda: 0.9
    model.on_train_batch_end(None, None, 0)
    for t, before, online in zip(model.momentum_backbone.parameters(), target_before,
                                 model.backbone.parameters(), strict=True):
        assert torch.allclose(t, 0.9 * before + 0.1 * online, atol=1e-6)


def test_non_finite_loss_is_reported_at_the_next_check_with_its_step(make_cfg) -> None:
    model = METHODS["fkt_joint"](make_cfg("fkt_joint"))
    _, views, targets = batch()
    model.training_step((None, [v.clone() for v in views], targets), 0)
    model.check_finite()  # a finite step passes
    views[0][0, 0, 0, 0] = float("nan")
    # The step itself does not stop (no host-device synchronisation in it); the check does.
    model.training_step((None, views, targets), 1)
    with pytest.raises(NonFiniteLossError,
                       match=r"not finite at step 0 .*nce_loss nan.* Lower optimizer.lr"):
        model.check_finite()


def test_a_supervised_view_of_another_crop_size_gets_its_own_backbone_pass(make_cfg) -> None:
    model = METHODS["fkt_joint"](make_cfg("fkt_joint"))
    model.eval()  # BatchNorm on running statistics: each pass then equals the reference pass
    _, views, targets = batch()
    views[0], views[1] = views[0][..., 2:26, 2:26], views[1][..., :24, :24]  # 24 px strong crops
    loss = model.training_step((None, views, targets), 0)
    with torch.no_grad():
        z0, z1 = model.projector(model.backbone(torch.cat(views[:2]))).chunk(2)
        labelled = targets >= 0
        ce = F.cross_entropy(model.classifier(model.backbone(views[2]))[labelled],
                             targets[labelled])
        expected = nt_xent(z0, z1, model.cfg.method_kwargs.temperature) + ce
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
