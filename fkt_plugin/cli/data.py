"""``fkt-data inspect``: see a dataset as the plugin reads it before training on it."""

from __future__ import annotations

import argparse
from pathlib import Path

from fkt_plugin.cli.errors import user_errors_exit
from fkt_plugin.data.files import BAD_IMAGE_POLICIES
from fkt_plugin.errors import ConfigError, MissingPathError
from fkt_plugin.recipes import PRETRAIN_RECIPES


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``fkt-data``."""
    from fkt_plugin.data import DATASETS

    parser = argparse.ArgumentParser(prog="fkt-data", description="Dataset tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser(
        "inspect", help="counts per split and class, image size, skipped files; picture grids",
        description="Load a dataset as fkt-train would (decoding image files once into the "
                    "cache), print images per split and class, the image size and channel "
                    "statistics, and which files were skipped and why.",
    )
    inspect.add_argument("dataset", help=f"one of {', '.join(sorted(DATASETS))}")
    inspect.add_argument("path", nargs="?", default=None,
                         help="the dataset's folder (data.train_path)")
    inspect.add_argument("--val-path", help="test folder, where the dataset takes one")
    inspect.add_argument("--unlabelled-path", help="folder adapter: unlabelled images")
    inspect.add_argument("--image-size", type=int, help="decode size (data.image_size)")
    inspect.add_argument("--cache-dir", help="decode cache folder (data.cache_dir)")
    inspect.add_argument("--fold", type=int, help="stl10: an official fold (0-9)")
    inspect.add_argument("--on-bad-image", choices=BAD_IMAGE_POLICIES,
                         default=BAD_IMAGE_POLICIES[0])
    inspect.add_argument("--grid", type=Path, metavar="OUT.png",
                         help="write a grid of decoded training images titled by label")
    inspect.add_argument("--views", type=Path, metavar="OUT.png",
                         help="write images beside the augmented views a recipe makes of them")
    inspect.add_argument("--recipe", type=Path,
                         help="recipe whose augmentations --views shows (default: "
                              "recipes/pretrain/<dataset>/simclr.yaml)")
    commands.add_parser(
        "obtain-fashion-mnist", help="find Fashion-MNIST or fetch it (Debian package as root, "
        "else torchvision's download) and print where it is",
    )
    args = parser.parse_args(argv)
    if args.command == "obtain-fashion-mnist":
        from fkt_plugin.data.fashion_mnist import obtain_fashion_mnist

        with user_errors_exit():
            print(f"Fashion-MNIST: {obtain_fashion_mnist()}")
        return

    from fkt_plugin.augmentation import parse_pipelines
    from fkt_plugin.data.inspect import describe, load_with_notes, sample_grid, views_grid
    from fkt_plugin.recipes import compose_recipe

    with user_errors_exit():
        loader = DATASETS[args.dataset]
        options = {"train_path": args.path, "val_path": args.val_path,
                   "unlabelled_path": args.unlabelled_path, "image_size": args.image_size,
                   "cache_dir": args.cache_dir, "fold": args.fold,
                   "on_bad_image": args.on_bad_image}
        dataset, notes = load_with_notes(loader, **options)
        print(describe(dataset, args.dataset, notes))
        if args.grid:
            print(f"wrote {sample_grid(dataset, args.grid)}")
        if args.views:
            recipe = args.recipe or PRETRAIN_RECIPES / args.dataset / "simclr.yaml"
            if not recipe.is_file():
                raise MissingPathError(f"recipe {recipe} does not exist; pass --recipe")
            pipelines = compose_recipe(recipe).get("augmentations")
            if pipelines is None:
                raise ConfigError(f"recipe {recipe} has no augmentations")
            print(f"wrote {views_grid(dataset, parse_pipelines(pipelines), args.views)}")


if __name__ == "__main__":
    main()
