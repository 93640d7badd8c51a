"""Stand-in of solo.data.pretrain_dataloader."""

from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import ImageFolder

IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
MEANS_N_STD = {"cifar10": ((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))}


def build_transform_pipeline(dataset, cfg):
    """Reads every key solo-learn's version reads; mean/std from the node for other datasets."""
    mean, std = MEANS_N_STD.get(dataset, (cfg.get("mean", IMAGENET_STATS[0]),
                                          cfg.get("std", IMAGENET_STATS[1])))
    steps = [transforms.RandomResizedCrop(cfg.crop_size, scale=(cfg.rrc.crop_min_scale,
                                                                cfg.rrc.crop_max_scale))
             if cfg.rrc.enabled else transforms.Resize(cfg.crop_size)]
    jitter = cfg.color_jitter
    if jitter.prob:
        steps.append(transforms.RandomApply([transforms.ColorJitter(
            jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue)], p=jitter.prob))
    if cfg.grayscale.prob:
        steps.append(transforms.RandomGrayscale(cfg.grayscale.prob))
    for key in ("gaussian_blur", "solarization", "equalization"):
        assert 0 <= cfg[key].prob <= 1
    if cfg.horizontal_flip.prob:
        steps.append(transforms.RandomHorizontalFlip(cfg.horizontal_flip.prob))
    steps += [transforms.ToTensor(), transforms.Normalize(mean, std)]
    transform = transforms.Compose(steps)
    transform.stats = (tuple(mean), tuple(std))
    return transform


class NCropAugmentation:
    def __init__(self, transform, num_crops):
        self.transform, self.num_crops = transform, num_crops

    def __call__(self, x):
        return [self.transform(x) for _ in range(self.num_crops)]


class FullTransformPipeline:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, x):
        return [crop for t in self.transforms for crop in t(x)]


class _WithIndex(ImageFolder):
    def __getitem__(self, index):
        return (index, *super().__getitem__(index))


def prepare_datasets(dataset, transform, train_data_path=None, data_format="image_folder",
                     no_labels=False, download=True, data_fraction=-1.0):
    assert dataset == "custom", f"the stand-in has no files for {dataset}"
    return _WithIndex(train_data_path, transform)


def prepare_dataloader(train_dataset, batch_size=64, num_workers=4):
    return DataLoader(train_dataset, batch_size=batch_size, shuffle=True,
                      num_workers=num_workers, drop_last=True)
