"""Stand-in of solo.data.classification_dataloader."""

from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import ImageFolder


def prepare_dataloaders(train_dataset, val_dataset, batch_size=64, num_workers=4):
    return (DataLoader(train_dataset, batch_size=batch_size, shuffle=True,
                       num_workers=num_workers, drop_last=True),
            DataLoader(val_dataset, batch_size=batch_size, num_workers=num_workers))


def prepare_data(dataset, train_data_path=None, val_data_path=None, data_format="image_folder",
                 batch_size=64, num_workers=4, download=True, data_fraction=-1.0,
                 auto_augment=False):
    assert dataset == "custom", f"the stand-in has no files for {dataset}"
    t = transforms.Compose([transforms.Resize(32), transforms.CenterCrop(32),
                            transforms.ToTensor()])
    return prepare_dataloaders(ImageFolder(train_data_path, t), ImageFolder(val_data_path, t),
                               batch_size, num_workers)
