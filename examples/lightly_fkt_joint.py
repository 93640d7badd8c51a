"""fkt_joint in a plain PyTorch loop, the way lightly's SimCLR example trains SimCLR.

Differences from that example: each batch arrives as uint8 images, and fkt_plugin's
``DeviceAugmentation`` makes the views on the device (two strong views for NT-Xent, one weak view
for the classifier); the loss is ``JointLoss`` (NT-Xent + cross-entropy on the labelled images),
and a classifier head trains the encoder together with the projection head.

    python examples/lightly_fkt_joint.py --data /usr/share/datasets/fashion-mnist --epochs 1
"""

from __future__ import annotations

import argparse

import torch
import torchvision
from lightly.models.modules.heads import SimCLRProjectionHead
from omegaconf import OmegaConf
from torch import nn

from fkt_plugin.augmentation import DeviceAugmentation, parse_pipelines
from fkt_plugin.data import load_dataset
from fkt_plugin.data.splits import hide_labels
from fkt_plugin.losses import JointLoss

STRONG = {"rrc": {"crop_min_scale": 0.2}, "color_jitter": {"prob": 0.8, "brightness": 0.4,
                                                           "contrast": 0.4},
          "horizontal_flip": {"prob": 0.5}, "crop_size": 28, "num_crops": 2}
WEAK = {"rrc": {"crop_min_scale": 0.6}, "horizontal_flip": {"prob": 0.5}, "crop_size": 28}


class FKTModel(nn.Module):
    """A ResNet-18 encoder with a SimCLR projection head and a classifier head."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        resnet = torchvision.models.resnet18()
        resnet.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)  # small images
        resnet.maxpool = nn.Identity()
        resnet.fc = nn.Identity()
        self.backbone = resnet
        self.projection_head = SimCLRProjectionHead(512, 512, 128)
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(x)
        return self.projection_head(features), self.classifier(features)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="Fashion-MNIST folder (default: Debian's)")
    parser.add_argument("--label-fraction", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=None, help="stop early (smoke tests)")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dataset = load_dataset("fashion_mnist", args.data)
    images = dataset.train.read(slice(None))
    targets = hide_labels(dataset.train.targets, args.label_fraction, seed=0)
    augment = DeviceAugmentation(parse_pipelines(OmegaConf.create([STRONG, WEAK])),
                                 dataset.mean, dataset.std).to(device)
    model = FKTModel(dataset.num_channels, dataset.num_classes).to(device)
    criterion = JointLoss(temperature=0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=5e-4)

    loss = torch.tensor(float("nan"))
    step = 0
    for epoch in range(args.epochs):
        order = torch.randperm(len(images))
        for start in range(0, len(order) - args.batch_size + 1, args.batch_size):
            index = order[start:start + args.batch_size]
            x0, x1, x_weak = augment(images[index].to(device))
            z0, _ = model(x0)
            z1, _ = model(x1)
            _, logits = model(x_weak)
            out = criterion(z0, z1, logits, targets[index].to(device))
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
            loss, step = out.loss.detach(), step + 1
            if args.max_steps and step >= args.max_steps:
                break
        print(f"epoch {epoch}: loss {loss.item():.4f} (NT-Xent {out.ssl.item():.4f}, "
              f"cross-entropy {out.supervised.item():.4f})")
    return loss.item()


if __name__ == "__main__":
    main()
