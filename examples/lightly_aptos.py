"""lightly's SimCLR or BYOL on APTOS 2019, the dataset served by fkt-plugin's adapter as an
ordinary map-style dataset.

``torch_dataset("aptos", ...)`` reads the Kaggle folder in its own layout (train.csv,
train_images/, and test_images/ as unlabelled images when present), crops the dark border of
each fundus photo and decodes it once into a cache; lightly's ``LightlyDataset`` and transforms
take it like any torchvision dataset. The loop follows lightly's own SimCLR and BYOL examples.

    python examples/lightly_aptos.py --data data/aptos2019-blindness-detection --method byol
"""

from __future__ import annotations

import argparse
import copy

import torch
import torchvision
from lightly.data import LightlyDataset
from lightly.loss import NegativeCosineSimilarity, NTXentLoss
from lightly.models.modules.heads import (
    BYOLPredictionHead,
    BYOLProjectionHead,
    SimCLRProjectionHead,
)
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.transforms import (
    BYOLTransform,
    BYOLView1Transform,
    BYOLView2Transform,
    SimCLRTransform,
)
from lightly.utils.scheduler import cosine_schedule
from torch import nn

from fkt_plugin.data.torch_dataset import torch_dataset


def resnet18_backbone() -> nn.Module:
    resnet = torchvision.models.resnet18()
    return nn.Sequential(*list(resnet.children())[:-1], nn.Flatten())


class SimCLR(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = resnet18_backbone()
        self.projection_head = SimCLRProjectionHead(512, 512, 128)
        self.criterion = NTXentLoss(temperature=0.5)

    def loss(self, x0: torch.Tensor, x1: torch.Tensor, momentum: float) -> torch.Tensor:
        return self.criterion(self.projection_head(self.backbone(x0)),
                              self.projection_head(self.backbone(x1)))


class BYOL(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = resnet18_backbone()
        self.projection_head = BYOLProjectionHead(512, 1024, 256)
        self.prediction_head = BYOLPredictionHead(256, 1024, 256)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)
        self.criterion = NegativeCosineSimilarity()

    def online(self, x: torch.Tensor) -> torch.Tensor:
        return self.prediction_head(self.projection_head(self.backbone(x)))

    def target(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head_momentum(self.backbone_momentum(x)).detach()

    def loss(self, x0: torch.Tensor, x1: torch.Tensor, momentum: float) -> torch.Tensor:
        update_momentum(self.backbone, self.backbone_momentum, m=momentum)
        update_momentum(self.projection_head, self.projection_head_momentum, m=momentum)
        return 0.5 * (self.criterion(self.online(x0), self.target(x1))
                      + self.criterion(self.online(x1), self.target(x0)))


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True,
                        help="the APTOS 2019 folder (holding train.csv and train_images/)")
    parser.add_argument("--method", choices=("simclr", "byol"), default="simclr")
    parser.add_argument("--image-size", type=int, default=224, help="crop size of the views")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--max-steps", type=int, default=None, help="stop early (smoke tests)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=4)
    args = parser.parse_args(argv)

    size = args.image_size
    transform = (SimCLRTransform(input_size=size, vf_prob=0.5, rr_prob=0.5)
                 if args.method == "simclr" else
                 BYOLTransform(BYOLView1Transform(input_size=size),
                               BYOLView2Transform(input_size=size)))
    # The whole training pool: labelled images and unlabelled ones (target -1) alike.
    pool = torch_dataset("aptos", "train", train_path=args.data, image_size=max(size, 64))
    dataset = LightlyDataset.from_torch_dataset(pool, transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                                         drop_last=True, num_workers=args.num_workers)
    if len(loader) == 0:
        raise SystemExit(f"error: {len(dataset)} images are fewer than --batch-size "
                         f"{args.batch_size}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = (SimCLR() if args.method == "simclr" else BYOL()).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=5e-4)

    loss = torch.tensor(float("nan"))
    step = 0
    for epoch in range(args.epochs):
        momentum = cosine_schedule(epoch, args.epochs, 0.996, 1.0)
        for (x0, x1), _, _ in loader:
            loss = model.loss(x0.to(device), x1.to(device), momentum)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if args.max_steps and step >= args.max_steps:
                break
        print(f"epoch {epoch}: {args.method} loss {loss.item():.4f}")
        if args.max_steps and step >= args.max_steps:
            break
    return loss.item()


if __name__ == "__main__":
    main()
