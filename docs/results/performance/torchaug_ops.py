"""torchaug's per-image batched transforms counted the way the fused engine is: aten ops and host
reads for SimCLR's two views of one batch, and whether they run on a fake CUDA batch.

torchaug is not a dependency; run from the project root with it on the path:

    pip install --target ../torchaug torchaug==0.6.1 --no-deps
    PYTHONPATH=../torchaug python docs/results/performance/torchaug_ops.py
"""

from __future__ import annotations

import torch
import torchaug.transforms as T
from torch._subclasses.fake_tensor import FakeTensorMode

from fkt_plugin.augmentation import DeviceAugmentation
from fkt_plugin.benchmarks.augmentation import MEAN, STD, preset_pipelines, synthetic_images
from fkt_plugin.benchmarks.ops import count_ops, fake_cuda_ops


def simclr_view(size: int) -> T.Compose:
    """The STL-10 SimCLR pipeline in torchaug, each parameter drawn per image
    (``num_chunks=-1``) on whole batches (``batch_transform=True``)."""
    per_image = {"num_chunks": -1, "batch_transform": True}
    return T.Compose([
        T.RandomResizedCrop(size, antialias=True, **per_image),
        T.RandomHorizontalFlip(p=0.5, batch_transform=True),
        T.RandomColorJitter(0.4, 0.4, 0.2, 0.1, p=0.8, **per_image),
        T.RandomGrayscale(p=0.2, batch_transform=True),
        T.RandomGaussianBlur(2 * round(0.05 * size) + 1, (0.1, 2.0), p=0.5,
                             batch_transform=True),
        T.ToDtype(torch.float32, scale=True),
        T.Normalize(MEAN, STD),
    ])


def main() -> None:
    print("| px | torchaug ops | torchaug host reads | fake CUDA batch | fused ops |")
    print("|---|---|---|---|---|")
    for size in (32, 96):
        view = simclr_view(size)
        images = synthetic_images(256, size, torch.device("cpu"))
        counted = count_ops(lambda v=view, x=images: [v(x), v(x)])
        try:
            with FakeTensorMode(allow_non_fake_inputs=True):
                view(torch.empty(64, 3, size, size, dtype=torch.uint8, device="cuda"))
            fake = "runs"
        except Exception as error:  # noqa: BLE001 - the failure is the measurement
            fake = f"fails: {type(error).__name__}"
        fused = fake_cuda_ops(DeviceAugmentation(preset_pipelines("simclr", size), MEAN, STD),
                              256, size)
        print(f"| {size} | {counted.total:,} | {len(counted.syncing):,} | {fake} | "
              f"{fused.total} |")


if __name__ == "__main__":
    main()
