"""``fkt-cluster``: a teacher's features of a dataset → k-means → pseudo-labels (hydra)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from fkt_plugin.args.schemas import ClusterSchema
from fkt_plugin.cli.errors import user_errors_exit
from fkt_plugin.cli.hydra_app import main_with_help, store_tool_config

HELP = """\
fkt-cluster: cluster a teacher's features of a dataset and write pseudo-labels that any student
trains on (knowledge transfer by clustering, Noroozi et al., CVPR 2018).

usage:
  fkt-cluster run_dir=trained_models/simclr-fashion_mnist-labels1-seed5 k=100 out=clusters.npz

teacher:
  run_dir=<dir>          an fkt-train run (its config.yaml names backbone and data)
  checkpoint=last.ckpt   checkpoint under run_dir/checkpoints, or a path
  recipe=r.yaml          instead of run_dir: the training recipe of a checkpoint trained
                         elsewhere (solo-learn, torchvision state dict), with checkpoint=<file>
                         and recipe_overrides=[k=v,...]
  batch_size=512         images per batch of the teacher's forward passes
data:
  +data.dataset=cifar10 +data.train_path=...   cluster another dataset than the teacher's
  +assign_to.dataset=... +assign_to.train_path=... +assign_to.out=other.npz
                         label a second dataset with the fitted centroids
k-means (faiss):
  k=<int>  pca_dim=null  whiten=false  l2_normalize=true (spherical k-means)
  restarts=3  iterations=20  seed=0  use_gpu=false (faiss-gpu)
picture:
  picture.clusters=10  picture.images_per_cluster=8

Writes <out> (cluster ids of every training and test image, centroids, projection, settings,
the teacher's identity), <out stem>-report.md/.json (cluster sizes, NMI, ARI and purity against
the true labels where they exist, timings) and <out stem>-clusters.png (the largest clusters).
Train a student on the ids:
  fkt-train --config-path recipes/pretrain/fashion_mnist --config-name supervised \\
      data.pseudo_labels=clusters.npz name=student
then evaluate it on the real labels: fkt-eval run_dir=trained_models/student
"""

store_tool_config("fkt_cluster", "fkt_cluster_schema")


@hydra.main(version_base="1.3", config_path=None, config_name="fkt_cluster")
def _run(cfg: DictConfig) -> None:
    from fkt_plugin.transfer import cluster, report_markdown

    with user_errors_exit():
        report = cluster(cfg)
    print(report_markdown(report))


def main() -> None:
    """Entry point of ``fkt-cluster``."""
    main_with_help(HELP, _run, schema=ClusterSchema)


if __name__ == "__main__":
    main()
