"""MV-MR: its loss against an independent composition (the dcor package as the oracle of
distance correlation), the sign setting, the refusals, and training on every dataset's recipe."""

from __future__ import annotations

import dcor
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from fkt_plugin import METHODS
from fkt_plugin.args.run import validate_run_cfg
from fkt_plugin.augmentation import DeviceAugmentation, parse_pipelines
from fkt_plugin.errors import ConfigError, UnknownNameError
from tests.helpers import REPO, nchw, photo


def _views(n: int = 16) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    original = torch.randn(n, 1, 28, 28, generator=gen)
    return [original + 0.3 * torch.randn(n, 1, 28, 28, generator=gen), original]


def _dcor(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(dcor.distance_correlation(a.detach().double().flatten(1).numpy(),
                                           b.detach().double().flatten(1).numpy()))


@pytest.mark.parametrize("dependence", ["maximise", "minimise"])
def test_loss_is_the_weighted_sum_of_its_terms(make_cfg, dependence: str) -> None:
    model = METHODS["mvmr"](make_cfg(
        "mvmr", "method_kwargs.proj_hidden_dim=32", "method_kwargs.proj_output_dim=16",
        "method_kwargs.mse_weight=0.5", "method_kwargs.var_weight=2.0",
        "method_kwargs.dcor_weight=3.0", "method_kwargs.representations=[pixels]",
        "method_kwargs.representation_weight=0.7",
        f"method_kwargs.representation_dependence={dependence}"))
    views = _views()
    targets = torch.full((16,), -1)
    feats = model.encode_views(views, [0, 1])
    loss, logs = model.ssl_loss([feats[0], feats[1]], views, targets)
    with torch.no_grad():
        z_aug, z_orig = model.projector(torch.cat([feats[0], feats[1]])).chunk(2)
    mse = ((z_orig - z_aug) ** 2).mean().item()
    # VICReg's hinge on sqrt(var + 1e-4), as in variance_hinge
    hinge = np.maximum(0.0, 1.0 - np.sqrt(z_aug.double().var(dim=0).numpy() + 1e-4)).mean()
    dependence_on_pixels = _dcor(views[1], z_aug)
    rep = 1 - dependence_on_pixels if dependence == "maximise" else dependence_on_pixels
    expected = 0.5 * mse + 2.0 * hinge + 3.0 * (1 - _dcor(z_orig, z_aug)) + 0.7 * rep
    assert loss.item() == pytest.approx(expected, rel=1e-4)
    assert logs["train_rep_pixels_loss"].item() == pytest.approx(rep, abs=1e-5)
    assert set(logs) == {"train_mvmr_loss", "train_mse_loss", "train_var_loss",
                         "train_dcor_loss", "train_rep_pixels_loss"}


def test_zero_weights_drop_their_terms_and_the_step_trains_the_encoder(make_cfg) -> None:
    model = METHODS["mvmr"](make_cfg(
        "mvmr", "method_kwargs.proj_hidden_dim=32", "method_kwargs.proj_output_dim=16",
        "method_kwargs.mse_weight=0", "method_kwargs.var_weight=0",
        "method_kwargs.representations=[{name: hog, weight: 0.0}, local_std]"))
    views = _views()
    targets = torch.full((16,), -1)
    loss, logs = model.training_losses(model.encode_views(views, [0, 1]), views,
                                       torch.zeros(16, 10), targets)
    assert set(logs) == {"train_class_loss", "train_mvmr_loss", "train_dcor_loss",
                         "train_rep_local_std_loss"}
    loss.backward()
    assert model.backbone.features[0].weight.grad.abs().sum() > 0


def test_bad_settings_are_named(make_cfg) -> None:
    with pytest.raises(UnknownNameError, match="unknown representation 'sift'; known "
                                               "representations: hog, local_std, pixels"):
        make_cfg("mvmr", "method_kwargs.representations=[pixels,sift]")
    with pytest.raises(ConfigError, match="representation_dependence='maximize' is unknown; "
                                          "use one of maximise, minimise"):
        make_cfg("mvmr", "method_kwargs.representation_dependence=maximize")
    with pytest.raises(ConfigError, match="batch_size=2 is too small for mvmr"):
        make_cfg("mvmr", "optimizer.batch_size=2")
    with pytest.raises(ConfigError, match="representation 'hog' is listed twice"):
        make_cfg("mvmr", "method_kwargs.representations=[hog,hog]")
    with pytest.raises(ConfigError, match="nothing would be learnt"):
        make_cfg("mvmr", "method_kwargs.mse_weight=0", "method_kwargs.dcor_weight=0",
                 "method_kwargs.representations=[]")
    with pytest.warns(UserWarning, match="view 1, which MV-MR takes un-augmented"):
        make_cfg("mvmr", "augmentations.1.rrc.enabled=true")
    cfg = make_cfg("mvmr_distill")
    with pytest.raises(ConfigError, match="needs method_kwargs.teacher.run_dir"):
        METHODS["mvmr"](cfg)


def test_distillation_reads_the_teacher_from_its_run_directory(make_cfg, tmp_path) -> None:
    from fkt_plugin.runner import train

    train(make_cfg("simclr", "name=teacher", "knn_eval.enabled=false"))
    student = METHODS["mvmr"](make_cfg(
        "mvmr_distill", f"method_kwargs.teacher.run_dir={tmp_path / 'teacher'}",
        "method_kwargs.representations=[teacher]", "backbone.kwargs.width=8"))
    teacher = student.representations["teacher"]
    assert teacher.source.endswith("last.ckpt")
    x = torch.randn(8, 1, 28, 28)
    assert teacher(x).shape == (8, 16)  # the teacher's width-4 small_cnn: 4 * 4 features


RECIPE_ROOT = REPO / "recipes" / "pretrain"
SIZES = {"fashion_mnist": (28, 1), "cifar10": (32, 3), "cifar100": (32, 3), "stl10": (96, 3),
         "intel": (128, 3), "aptos": (224, 3), "folder": (112, 3)}


@pytest.mark.parametrize("dataset", sorted(SIZES))
def test_every_dataset_recipe_trains_with_the_loss_falling(dataset: str) -> None:
    size, channels = SIZES[dataset]
    with initialize_config_dir(config_dir=str(RECIPE_ROOT / dataset), version_base="1.3"):
        cfg = compose(config_name="mvmr", overrides=[
            "method_kwargs.proj_hidden_dim=64", "method_kwargs.proj_output_dim=32",
            "optimizer.batch_size=16", "accelerator=cpu"])
    with open_dict(cfg):  # the CPU backbone: the recipes' ResNet-18 would take minutes here
        cfg.backbone.name, cfg.backbone.kwargs = "small_cnn", {"width": 4}
    cfg = validate_run_cfg(cfg)
    assert cfg.method == "mvmr" and cfg.data.dataset == dataset
    with initialize_config_dir(config_dir=str(RECIPE_ROOT / dataset), version_base="1.3"):
        distill = validate_run_cfg(compose(config_name="mvmr_distill"))
    assert "teacher" in distill.method_kwargs.representations
    with open_dict(cfg):
        cfg.data.num_classes, cfg.data.num_channels = 5, channels
    torch.manual_seed(0)
    model = METHODS["mvmr"](cfg)
    names = ["astronaut", "coffee", "chelsea", "rocket"]
    images = nchw([photo(names[i % 4], size) for i in range(16)])
    if channels == 1:
        images = images.float().mean(1, keepdim=True).round().to(torch.uint8)
    augment = DeviceAugmentation(parse_pipelines(cfg.augmentations), [0.5] * channels,
                                 [0.25] * channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    targets = torch.full((16,), -1)
    losses = []
    for _ in range(12):
        views = augment(images)
        assert torch.allclose(views[1], (images.float() / 255 - 0.5) / 0.25, atol=1e-5)
        loss = model.training_step((None, views, targets), 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < np.mean(losses[:3]), losses
