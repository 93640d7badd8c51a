"""The settings of every tool as dataclasses: the one place their defaults live, registered as
hydra structured configs (hydra's convention for a typed schema).

Every shipped recipe names its schema first in its ``defaults:`` list (``fkt_run`` for training
recipes, ``fkt_compare`` for sweeps), so that every documented key can be set as ``key=value``
on every recipe, whether the file spells the key out or not, and a value of the wrong type is
refused when hydra composes the recipe, naming the key (``optimizer.lr=abc``). ``fkt-eval`` and
``fkt-cluster`` compose their schema alone. The validators of :mod:`fkt_plugin.args` take the
composed cfg from there (ranges, names, combinations) and work on untyped copies, so recipes
written for solo-learn, which do not extend a schema, are read the same way.

A leaf module: nothing of the package is imported here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

# Schema fields whose values take several types (an int or a mapping, ``auto`` or a switch) are
# typed ``Any``: OmegaConf's structured configs have no unions; their validators check them.


@dataclass
class BackboneSchema:
    name: str = "small_cnn"
    # The backbone builder's keyword arguments (checked against its signature).
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataSchema:
    dataset: str = "fashion_mnist"
    train_path: str | None = None
    val_path: str | None = None
    label_fraction: float = 1.0
    # budget: the validation split is carved from the labelled share, so train + validation
    # labels = label_fraction of the pool; extra: validation labels on top of the budget
    # (as papers usually do); none: no validation split, the last epoch is scored.
    val_labels: str = "budget"
    val_fraction: float = 0.1
    split_seed: int = 0
    num_workers: int = 0
    # fused: views made on the training device from uint8 batches by the view engine;
    # kornia: by kornia's containers; torchvision: per image in the loader workers
    # (solo-learn's way); the last two for comparison on the same recipe.
    augmentation_backend: str = "fused"
    # auto: training images kept on the GPU when they take under a quarter of its free
    # memory (each batch read there: no loader work, no host-to-device copy); true, false.
    device_resident: Any = "auto"
    # null: pin host memory when CUDA is available.
    pin_memory: bool | None = None
    persistent_workers: bool = True
    # null: uniform batches; a share in (0, 1]: that share of every batch is labelled.
    labelled_share: float | None = None
    # Adapters of image files: decode once to image_size (null: the dataset's own size)
    # into cache_dir (null: $FKT_DATA_HOME or ~/.cache/fkt_plugin); skip or stop at a file
    # that does not decode.
    image_size: int | None = None
    cache_dir: str | None = None
    on_bad_image: str = "skip"
    # folder: a folder of unlabelled images added to the self-supervised pool.
    unlabelled_path: str | None = None
    # stl10: one of the 10 official folds as the labelled images (null: all).
    fold: int | None = None
    # aptos, and folder without val_path: the stratified share held out as the test split.
    holdout_fraction: float = 0.2
    # Weight the classification loss by inverse class frequency (imbalanced datasets).
    class_weighted_loss: bool = False
    # A file of cluster ids (fkt-cluster) that replace the targets: k classes; with
    # batch_sampler: guided, they guide the batches instead and the targets stay.
    pseudo_labels: str | None = None
    # random (uniform batches) or guided (G-SimCLR: images of one cluster of
    # data.pseudo_labels never share a batch when that is possible).
    batch_sampler: str = "random"


@dataclass
class OptimizerSchema:
    name: str = "sgd"
    batch_size: int = 256
    lr: float = 0.06
    classifier_lr: float = 0.1
    weight_decay: float = 5e-4
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class SchedulerSchema:
    name: str = "warmup_cosine"
    warmup_epochs: float = 0.0
    warmup_start_lr: float = 0.0
    min_lr: float = 0.0


@dataclass
class PerformanceSchema:
    # Channels-last convolutions (solo-learn's key); torch.compile of the backbone and the view
    # engine, off by default because compiling costs minutes and needs a C compiler.
    disable_channel_last: bool = False
    compile: bool = False
    compile_mode: str | None = None


@dataclass
class KnnEvalSchema:
    enabled: bool = True
    k: int = 20
    temperature: float = 0.07


@dataclass
class CheckpointSchema:
    enabled: bool = True
    dir: str = "trained_models"
    frequency: int = 1


@dataclass
class AutoResumeSchema:
    enabled: bool = True


@dataclass
class WandbSchema:
    # solo-learn's block: log to Weights & Biases too (pip install wandb); offline: true writes
    # the run under <run>/wandb with no network, for a later `wandb sync`.
    enabled: bool = False
    entity: str | None = None
    project: str = "fkt-plugin"
    offline: bool = False


@dataclass
class RunSchema:
    """A training run (``fkt-train``, every arm of ``fkt-compare``): solo-learn's recipe keys
    and ours."""

    method: str | None = None
    name: str | None = None
    seed: int = 5
    backbone: BackboneSchema = field(default_factory=BackboneSchema)
    method_kwargs: dict[str, Any] = field(default_factory=dict)
    # A checkpoint whose backbone initialises this run (ours, solo-learn's, or a state dict).
    pretrained_feature_extractor: str | None = None
    data: DataSchema = field(default_factory=DataSchema)
    # solo-learn's list of view pipelines (validated by fkt_plugin.augmentation).
    augmentations: Any = None
    optimizer: OptimizerSchema = field(default_factory=OptimizerSchema)
    scheduler: SchedulerSchema = field(default_factory=SchedulerSchema)
    performance: PerformanceSchema = field(default_factory=PerformanceSchema)
    knn_eval: KnnEvalSchema = field(default_factory=KnnEvalSchema)
    checkpoint: CheckpointSchema = field(default_factory=CheckpointSchema)
    auto_resume: AutoResumeSchema = field(default_factory=AutoResumeSchema)
    max_epochs: int = 100
    # null: max_epochs ends the run; an int: the run stops after this many optimiser steps
    # (whatever the epochs), so that arms with different epoch sizes train equally long.
    max_steps: int | None = None
    # null: validate (and checkpoint) after every epoch; an int: every that many optimiser steps
    # across epochs (labelled-only runs at small budgets have epochs of one or two steps).
    val_every_n_steps: int | None = None
    # The model that is scored: best_val (the epoch of best validation accuracy) or last; null:
    # best_val when there is a validation split, else last.
    selection: str | None = None
    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    # Lightning's strategy (ddp for several devices); BatchNorm synchronised across processes.
    strategy: str = "auto"
    sync_batchnorm: bool = False
    # 32-true, bf16-mixed (GPUs from Ampere on, and CPUs), 16-mixed.
    precision: Any = "32-true"
    log_every_n_steps: int = 20
    # metrics.csv is always written; tensorboard adds TensorBoard event files in
    # <run>/tensorboard (pip install tensorboard).
    logger: str = "csv"
    wandb: WandbSchema = field(default_factory=WandbSchema)


@dataclass
class LinearProbeSchema:
    weight_decays: list[float] = field(default_factory=lambda: [0.0, 1e-4, 1e-3, 1e-2])
    max_iter: int = 200


@dataclass
class MlpProbeSchema:
    hidden_dim: int = 512
    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4


@dataclass
class KnnProbeSchema:
    k: int = 20
    temperature: float = 0.07


@dataclass
class FinetuneSchema:
    # Fine-tuning is a supervised run initialised from the checkpoint: a lower learning rate
    # than training from scratch, a short schedule, weak augmentation (null: random resized
    # crops of scale 0.5-1 and flips at the run's crop size). max_epochs: an int or a mapping
    # label fraction → int. val_every_n_steps: null validates every epoch; an int, every that
    # many steps (runs whose labelled-only epochs are a step or two).
    max_epochs: Any = 20
    lr: float = 0.03
    weight_decay: float = 5e-4
    warmup_epochs: float = 1
    augmentations: Any = None
    val_every_n_steps: int | None = None


@dataclass
class EvalPlotsSchema:
    confusion_matrix: bool = True
    embedding: bool = True
    embedding_samples: int = 2000


@dataclass
class EvalSchema:
    """An evaluation of a trained backbone (``fkt-eval``; the ``eval`` block of a sweep)."""

    run_dir: str | None = None
    # A training recipe describing backbone and data, for a checkpoint that was not trained by
    # fkt-train (then checkpoint is a file path and run_dir is where results go).
    recipe: str | None = None
    recipe_overrides: list[str] = field(default_factory=list)
    # The end of pre-training: self-supervised training selects no epoch with labels.
    checkpoint: str = "last.ckpt"
    # A protocol name or a list of them.
    protocols: Any = field(default_factory=lambda: ["linear", "knn"])
    # null: the run's own label fraction and split seed.
    label_fraction: float | None = None
    linear: LinearProbeSchema = field(default_factory=LinearProbeSchema)
    mlp: MlpProbeSchema = field(default_factory=MlpProbeSchema)
    knn: KnnProbeSchema = field(default_factory=KnnProbeSchema)
    finetune: FinetuneSchema = field(default_factory=FinetuneSchema)
    plots: EvalPlotsSchema = field(default_factory=EvalPlotsSchema)


@dataclass
class ClusterPictureSchema:
    clusters: int = 10
    images_per_cluster: int = 8


@dataclass
class ClusterSchema:
    """``fkt-cluster``: a teacher's features of a dataset → k-means → pseudo-labels."""

    # The teacher: a run directory of fkt-train (its config.yaml names backbone and data) ...
    run_dir: str | None = None
    checkpoint: str = "last.ckpt"
    # ... or, for a checkpoint trained elsewhere (solo-learn, torchvision), a training recipe
    # describing its backbone and data, with checkpoint=<file>.
    recipe: str | None = None
    recipe_overrides: list[str] = field(default_factory=list)
    # Overrides of the teacher's data keys (data.dataset, data.train_path, ...): cluster another
    # dataset than the teacher was trained on.
    data: dict[str, Any] = field(default_factory=dict)
    k: int | None = None
    out: str | None = None
    # PCA to pca_dim dimensions first (null: none), whitened or not; then L2 normalisation
    # (spherical k-means, the paper's choice).
    pca_dim: int | None = None
    whiten: bool = False
    l2_normalize: bool = True
    restarts: int = 3
    iterations: int = 20
    seed: int = 0
    # faiss on every GPU it sees (needs faiss-gpu instead of faiss-cpu).
    use_gpu: bool = False
    batch_size: int = 512
    # A second dataset labelled with the fitted centroids: {dataset, train_path, ..., out}
    # (empty: none).
    assign_to: dict[str, Any] = field(default_factory=dict)
    # The picture: the largest clusters, a few images each.
    picture: ClusterPictureSchema = field(default_factory=ClusterPictureSchema)


@dataclass
class ArmSchema:
    """One arm of a sweep."""

    name: str | None = None
    recipe: str | None = None
    # An int, or a mapping label fraction → epochs (fewer labels, more epochs per label).
    epochs: Any = None
    # Instead of epochs: optimiser steps (an int or a mapping label fraction → steps), so that
    # arms whose epochs differ in size (labelled-only vs the whole pool) train equally long.
    steps: Any = None
    # null: the run's own classifier; else an evaluation protocol of the trained backbone.
    protocol: str | None = None
    # Hydra overrides of this arm's training runs.
    overrides: list[str] = field(default_factory=list)
    # null: every fraction of the sweep; else the subset this arm runs at.
    fractions: list[float] | None = None
    # Knowledge transfer by clustering: the arm whose trained backbone is the teacher, k, and
    # fkt-cluster settings (pca_dim, whiten, restarts, ...). The arm's own recipe is the student,
    # trained on the teacher's cluster ids, then scored on the real labels by its protocol.
    # With a teacher and no k, the teacher's run directory is given to the student's recipe as
    # method_kwargs.teacher.run_dir instead (MV-MR distillation, mvmr_distill recipes).
    teacher: str | None = None
    k: int | None = None
    cluster: dict[str, Any] = field(default_factory=dict)


@dataclass
class EmbeddingSchema:
    # The t-SNE figure shows every arm at one label fraction (null: the smallest) and seed
    # (null: the first).
    fraction: float | None = None
    seed: int | None = None
    samples: int = 2000


@dataclass
class LauncherSchema:
    """Where a sweep's runs execute: ``local`` (processes of this machine, ``processes=N``) or
    ``slurm`` (each run a SLURM job through submitit, one job array per layer of dependencies).
    Chosen as a hydra group: ``launcher=slurm launcher.partition=gpu``."""

    name: str = "local"
    # submitit's cluster: slurm, or local (the same jobs as subprocesses of this machine, what
    # the tests run), debug (in this process).
    cluster: str = "slurm"
    partition: str | None = None
    gpus_per_job: int = 1
    cpus_per_job: int = 8
    mem_gb: int = 32
    timeout_min: int = 720
    # The most tasks of one array that run at once (SLURM's array throttle, %N).
    max_parallel: int = 64
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    # More sbatch options, passed to submitit as they are (e.g. {mail_type: END}).
    additional: dict[str, Any] = field(default_factory=dict)
    # submitit's logs, pickles and sbatch scripts (null: <out>/slurm).
    folder: str | None = None
    # true: wait for every job and write the report; false: submit (a final job writes it).
    wait: bool = False
    # true: write the sbatch scripts and print the plan, submit nothing (no SLURM needed).
    dry_run: bool = False
    # Seconds one run takes, for the GPU-hours estimate when no finished run says (null: the
    # median of the finished runs' training seconds).
    seconds_per_job: float | None = None


LAUNCHERS = ("local", "slurm")
"""The options of the ``launcher`` group."""

DEFAULT_SEEDS = [0, 1, 2]
"""The seeds of a sweep whose recipe sets none."""


@dataclass
class CompareSchema:
    """A comparison sweep (``fkt-compare``): arms × label fractions × seeds."""

    # The launcher group's option (hydra): `_self_` first, so that the option chosen on the
    # command line (launcher=slurm) fills the launcher block over the defaults below.
    defaults: list[Any] = field(default_factory=lambda: ["_self_", {"launcher": "local"}])
    # Folder of the arms' training recipes; relative paths start at the compare recipe's folder.
    recipes: str | None = None
    out: str = "compare_runs"
    fractions: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0])
    # A list, or a mapping label fraction → list (e.g. more seeds where runs are cheap); null:
    # DEFAULT_SEEDS. (A list default could not be replaced by a mapping when hydra merges.)
    seeds: Any = None
    # Hydra overrides applied to every training run of the sweep.
    overrides: list[str] = field(default_factory=list)
    arms: list[ArmSchema] = field(default_factory=list)
    # Settings of the evaluation protocols (run_dir, protocols and label_fraction are set per
    # run).
    eval: EvalSchema = field(default_factory=EvalSchema)
    embedding: EmbeddingSchema = field(default_factory=EmbeddingSchema)
    # true: train nothing, summarise the runs finished so far.
    summary_only: bool = False
    # Processes that share the sweep's jobs (one claims each job and shared run); the others
    # write their output to <out>/logs/process-<i>.log. More than one helps where one run leaves
    # the machine idle: a GPU with small networks, or a machine with many cores.
    processes: int = 1
    # data.val_labels and selection of every run (null: each recipe's own): the protocol of
    # the labels and of the scored model, kept out of the run names so that a sweep started
    # before these keys existed resumes.
    val_labels: str | None = None
    selection: str | None = None
    # Pairs of arm names [a, b]: results.md and results.csv get the mean of a − b over the seeds
    # both finished, with its 95% t-interval (runs with one seed share splits and labels).
    paired: list[Any] = field(default_factory=list)
    launcher: LauncherSchema = field(default_factory=LauncherSchema)
    # A sweep's design is declared at its first start (<out>/declaration.json); a later start
    # with another design is refused unless this gives the reason, recorded as an amendment.
    amend: str | None = None


@dataclass
class StudyDataSchema:
    """The user's dataset as a training recipe names it (``data.dataset=folder
    data.train_path=<root> data.image_size=128``); null keys keep the recipe family's."""

    dataset: str | None = None
    train_path: str | None = None
    val_path: str | None = None
    unlabelled_path: str | None = None
    image_size: int | None = None
    cache_dir: str | None = None
    on_bad_image: str | None = None
    fold: int | None = None
    holdout_fraction: float | None = None
    class_weighted_loss: bool | None = None


@dataclass
class BudgetSchema:
    # One of the two: minutes of this machine, or GPU-hours (both are wall time of the runs).
    minutes: float | None = None
    gpu_hours: float | None = None
    # Shares of the user's labels to study: 1.0 is every label the user has; smaller shares
    # simulate smaller budgets (each also keeps its validation split inside it).
    fractions: list[float] = field(default_factory=lambda: [1.0])


@dataclass
class FamilySchema:
    """A recipe family: the training recipes of one image size, and how its backbone is chosen
    on a machine without a GPU (``cpu``) and with one (``gpu``)."""

    name: str = ""
    # Folder of the family's training recipes (relative to the study template's folder).
    recipes: str = ""
    # Datasets whose own recipes these are (chosen by data.dataset first) ...
    datasets: list[str] = field(default_factory=list)
    # ... else, for datasets without a family (folder), the first family whose largest image
    # size is at least the decoded size (null: any size).
    max_image_size: int | None = None
    cpu: list[str] = field(default_factory=list)
    gpu: list[str] = field(default_factory=list)
    # Overrides of every run of this family.
    overrides: list[str] = field(default_factory=list)


@dataclass
class ScheduleSchema:
    # The optimiser steps of every training run (matched steps) are the most the budget allows
    # at min_seeds seeds, within [min_steps, max_steps]; leftover budget buys seeds up to
    # max_seeds.
    min_steps: int = 50
    max_steps: int = 3000
    min_seeds: int = 3
    max_seeds: int = 5
    # Validations per run (the still-rising check and the curves read them).
    validations: int = 16
    # Labelled images each class needs at every fraction for a validation split inside the
    # budget that can tell arms apart (1 validation + 9 training images at val_fraction 0.1).
    min_labels_per_class: int = 10


@dataclass
class PilotSchema:
    # Each arm's training run for this many optimiser steps on a seed outside the study, timed
    # per step: what sizes the schedule and the seeds to the budget.
    steps: int = 12
    seed: int = 100


@dataclass
class DeliverSchema:
    # Retrain the recommended method on every label of the largest fraction and export it.
    enabled: bool = True
    # false: no validation split for the delivered model (every label trains; the last step is
    # the model); true: keep the budget's validation split.
    validation: bool = False


@dataclass
class StudySchema:
    """``fkt-study``: which training method gives the best classifier on the user's images at
    the user's label budget, and how sure that is."""

    defaults: list[Any] = field(default_factory=lambda: ["_self_", {"launcher": "local"}])
    data: StudyDataSchema = field(default_factory=StudyDataSchema)
    budget: BudgetSchema = field(default_factory=BudgetSchema)
    # The study's folder (null: studies/<dataset>[-<train_path folder>]).
    out: str | None = None
    arms: list[ArmSchema] = field(default_factory=list)
    families: list[FamilySchema] = field(default_factory=list)
    # auto: the family's gpu backbone when CUDA is available, else its cpu one; cpu or gpu.
    backbone: str = "auto"
    schedule: ScheduleSchema = field(default_factory=ScheduleSchema)
    pilot: PilotSchema = field(default_factory=PilotSchema)
    deliver: DeliverSchema = field(default_factory=DeliverSchema)
    # Hydra overrides of every training run (after the family's).
    overrides: list[str] = field(default_factory=list)
    eval: EvalSchema = field(default_factory=EvalSchema)
    processes: int = 1
    launcher: LauncherSchema = field(default_factory=LauncherSchema)
    amend: str | None = None


SCHEMAS: dict[str, type] = {"fkt_run": RunSchema, "fkt_eval_schema": EvalSchema,
                            "fkt_cluster_schema": ClusterSchema, "fkt_compare": CompareSchema,
                            "fkt_study": StudySchema}
"""Name in hydra's config store → schema. Recipes name ``fkt_run`` or ``fkt_compare`` first in
their defaults list; fkt-eval and fkt-cluster compose theirs alone."""


def defaults_of(schema: type) -> dict[str, Any]:
    """A schema's defaults as plain nested dicts (what the validators fill in; a defaults list
    is hydra's, not a setting)."""
    return {k: v for k, v in asdict(schema()).items() if k != "defaults"}


def register_schemas() -> None:
    """Stores every schema in hydra's config store (again: storing is idempotent)."""
    store = ConfigStore.instance()
    for name, schema in SCHEMAS.items():
        store.store(name=name, node=schema)
    for launcher in LAUNCHERS:
        store.store(group="launcher", name=launcher, node=LauncherSchema(name=launcher))

