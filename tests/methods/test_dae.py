"""G-SimCLR's denoising autoencoder: shapes, its loss falling on a fixture, the refusals, and its
encoder as an fkt-cluster teacher that guides SimCLR's batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf, open_dict

from fkt_plugin import METHODS
from fkt_plugin.args.run import validate_run_cfg
from fkt_plugin.backbones import build_backbone
from fkt_plugin.errors import ConfigError
from tests.helpers import load_recipe

DAE_TINY = ["backbone.kwargs.widths=[8,16,32]", "optimizer.batch_size=64", "max_epochs=1",
            "scheduler.warmup_epochs=0", "accelerator=cpu", "++log_every_n_steps=1"]


@pytest.fixture
def make_cfg(fmnist_dir: Path, tmp_path: Path):
    """``make_cfg("dae", *overrides)``: the dae recipe, validated, with the data fields filled
    (the shared fixture's overrides are for the small CNN)."""
    def make(recipe: str, *overrides: str):
        cfg = validate_run_cfg(load_recipe(recipe, [
            f"data.train_path={fmnist_dir}", f"checkpoint.dir={tmp_path}", *overrides]))
        with open_dict(cfg):
            cfg.data.num_classes, cfg.data.num_channels = 10, 1
        return cfg

    return make


@pytest.mark.parametrize(("size", "channels"), [(28, 1), (32, 3), (96, 3)])
def test_latents_are_pooled_to_the_latent_size_and_decoded_to_the_image_size(
        make_cfg, size: int, channels: int) -> None:
    encoder, dim = build_backbone("dae_encoder", in_channels=channels)
    x = torch.randn(2, channels, size, size)
    assert encoder(x).shape == (2, dim) == (2, 128 * 4 * 4)
    cfg = make_cfg("dae")
    cfg.data.num_channels = channels
    model = METHODS["dae"](cfg)
    latent = model.backbone(x) if channels == 1 else torch.randn(2, 2048)
    assert model.decoder(latent, (size, size)).shape == (2, channels, size, size)


def test_the_reconstruction_loss_is_mse_to_the_clean_image_and_falls(make_cfg) -> None:
    torch.manual_seed(0)
    model = METHODS["dae"](make_cfg("dae", "method_kwargs.noise_std=0"))
    images = torch.rand(16, 1, 28, 28)
    loss, logs = model.ssl_loss([model.backbone(images)], [images], torch.full((16,), -1))
    expected = F.mse_loss(model.decoder(model.backbone(images), (28, 28)), images)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert set(logs) == {"train_reconstruction_loss"}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss, _ = model.ssl_loss([model.backbone(images)], [images], torch.full((16,), -1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_bad_settings_are_named(make_cfg) -> None:
    with pytest.raises(ConfigError, match="method dae needs backbone.name=dae_encoder"):
        METHODS["dae"](make_cfg("dae", "backbone.name=small_cnn", "~backbone.kwargs.widths",
                                "~backbone.kwargs.latent_size"))
    with pytest.raises(ConfigError, match="noise_std=-0.1"):
        make_cfg("dae", "method_kwargs.noise_std=-0.1")


def test_a_dae_run_is_a_cluster_teacher_that_guides_gsimclr(fmnist_dir: Path,
                                                             tmp_path: Path) -> None:
    from fkt_plugin.runner import train
    from fkt_plugin.transfer import cluster

    data = [f"data.train_path={fmnist_dir}", f"checkpoint.dir={tmp_path}"]
    dae = train(load_recipe("dae", [*data, *DAE_TINY, "name=dae"]))
    assert dae["method"] == "dae"
    labels = tmp_path / "dae-k64.npz"
    report = cluster(OmegaConf.create({"run_dir": str(tmp_path / "dae"), "k": 64,
                                       "out": str(labels)}))
    assert report["teacher"]["backbone"] == "dae_encoder" and report["settings"]["k"] == 64
    results = train(load_recipe("gsimclr", [
        *data, "backbone.kwargs.width=4", "optimizer.batch_size=64", "max_epochs=1",
        "scheduler.warmup_epochs=0", "accelerator=cpu", f"data.pseudo_labels={labels}",
        "name=gsimclr"]))
    guided = results["guided_batches"]
    assert guided["pseudo_labels"] == str(labels)
    # k = 64 = the batch size; what remains are pairs of clusters larger than the 19 batches,
    # at most those of each cluster spread evenly over them (sizes of the whole training split,
    # an upper bound for its pool's).
    sizes = np.bincount(np.load(labels)["train_labels"])
    spread = [divmod(int(n), 19) for n in sizes]
    bound = sum(r * (q + 1) * q // 2 + (19 - r) * q * (q - 1) // 2 for q, r in spread)
    assert guided["same_cluster_pairs_total"] <= bound
    # Evaluated like any run: on the real labels, with uniform batches for fine-tuning.
    from fkt_plugin.evaluation.protocols import evaluate_run

    probe = evaluate_run(OmegaConf.create({"run_dir": str(tmp_path / "gsimclr"),
                                           "protocols": ["linear"], "label_fraction": 0.5,
                                           "plots": {"embedding": False}}))
    assert 0 <= probe["linear"]["test"]["acc1"] <= 1
    with pytest.raises(ConfigError, match="needs data.pseudo_labels"):
        train(load_recipe("gsimclr", [*data, "name=unguided"]))
