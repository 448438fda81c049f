"""How good is a generator? Feature distances, class coverage, and GAN health checks.

    ganforge evaluate runs/00000-digits --data digits

Everything compares images as uint8 tensors (N, C, H, W): generated images in [-1, 1] go through
`data.to_uint8` first, exactly as they would be saved, so a run and a folder of its samples score
the same. Gray images are repeated to three channels; each feature network resizes to its input.

Statistics (on (N, D) feature tensors; "fake" is generated, "real" is the data):
    fid(fake, real) -> float                           Frechet distance (torch-fidelity)
    kid(fake, real, subsets, subset_size, seed) -> (mean, std)   unbiased polynomial-kernel MMD^2
    precision_recall(fake, real, k=3) -> (p, r)        Kynkaanniemi et al. 2019 (torch-fidelity)
    density_coverage(fake, real, k=5) -> (d, c)        Naeem et al. 2020
    compare(fake, real, seed) -> dict                  all of the above

Hooks for the training loop (train.py owns the calling; nothing here touches files):
    extractor = build_extractor("lite0", device=dev)   # build once, share between the helpers
    kid_tracker = KIDTracker(data.images, extractor, n=128, seed=cfg.seed)
        kid_tracker(G, latent_dim) -> {"kid": mean, "kid_std": std}
        The same latent vectors every call, real features computed once: a cheap --eval-every KID.
    collapse = CollapseDetector(data.images, extractor, n=64, threshold=0.4, warmup=1000)
        collapse.check(step, trainer.fixed_samples()) -> CollapseCheck
        .ratio is the batch's mean pairwise feature distance over the data's; .collapsed is
        ratio < threshold; .message is set once per drop below it, after the ratio has been
        healthy or from step `warmup` on (a fresh generator's samples all look alike).
    monitor = DiscriminatorMonitor(window=200, auto_balance=cfg.auto_balance)
        monitor.update(step, loss_d, d_fake) -> HealthEvent | None (call every step)
        The event's .actions (when auto-balancing) are applied with apply_actions(actions, trainer);
        event.to_dict() is JSON-ready for metrics.jsonl; monitor.state_dict() for checkpoints.
    is_diverged(loss_d, loss_g) -> bool                # NaN or infinite: roll back
"""

from __future__ import annotations

import math
import os
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.errors import GanforgeError

FEATURES = ("lite0", "inception")
# EfficientNet-Lite0 was trained at 224 px, but 128 px costs a quarter as much on a CPU and keeps
# ImageNet-meaningful features (4x4 before pooling). Scores are comparable only at equal settings.
LITE0_SIZE = 128
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"


# --------------------------------------------------------------------------------------------------
# Feature extraction


def as_uint8(images: Tensor) -> Tensor:
    """uint8 stays; float images are taken to be generator output in [-1, 1]."""
    if images.dtype == torch.uint8:
        return images
    from ganforge.data import to_uint8

    return to_uint8(images)


def to_rgb(images: Tensor) -> Tensor:
    """(N, 1 or 3, H, W) -> (N, 3, H, W)."""
    if images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1)
    if images.shape[1] != 3:
        raise ValueError(f"expected 1 or 3 channels, got {images.shape[1]}")
    return images


class FeatureExtractor:
    """Turns images into one feature vector each: `extractor(images) -> (N, dim)` float32 on the CPU.

    `images` is uint8 (N, C, H, W), or floats in [-1, 1]; any size, 1 or 3 channels.
    """

    def __init__(self, name: str, dim: int, embed, device: torch.device, batch_size: int = 64):
        self.name, self.dim, self._embed, self.device, self.batch_size = name, dim, embed, device, batch_size

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        out = []
        for i in range(0, len(images), self.batch_size):
            batch = to_rgb(as_uint8(images[i : i + self.batch_size])).to(self.device)
            out.append(self._embed(batch).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.dim)


def _lite0_embed(size: int):
    from ganforge.backbones import lite0_pooled_features

    def embed(batch_u8: Tensor) -> Tensor:
        x = batch_u8.float() / 255.0
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return lite0_pooled_features(x)  # (B, 1280)

    return embed


def _inception_network(weights: str | os.PathLike | None, pretrained: bool) -> nn.Module:
    """torch-fidelity's FID Inception (the TF graph's weights), given its weights by us.

    torch-fidelity would unpickle a weights file with weights_only=False; we load it ourselves
    (safetensors, or torch.load with weights_only=True, for the download too), then hand the state
    dict over through the constructor's own loading hook.
    """
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    if weights is not None:
        from ganforge.backbones import _load_state_dict

        state = _load_state_dict(Path(weights))
    elif pretrained:
        try:
            state = torch.hub.load_state_dict_from_url(INCEPTION_URL, map_location="cpu", progress=False, weights_only=True)
        except Exception as exc:  # network errors come in many types
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise GanforgeError(f"could not download the Inception weights ({reason}); "
                                "pass --inception-weights PATH to a local copy, or use --features lite0.") from None
    else:
        state = None  # random weights, for tests

    class Inception(fe.FeatureExtractorInceptionV3):
        def load_state_dict(self, sd, strict=True, assign=False):
            return None if sd is None else super().load_state_dict(sd, strict=strict, assign=assign)

    original = fe.load_state_dict_from_url
    fe.load_state_dict_from_url = lambda *a, **k: state  # the constructor's only source of weights
    try:
        return Inception("inception-v3-compat", ["2048"])
    except RuntimeError:
        raise GanforgeError(f"{weights} does not hold torch-fidelity's Inception-v3 weights.") from None
    finally:
        fe.load_state_dict_from_url = original


def build_extractor(name: str = "lite0", device: str | torch.device = "cpu", inception_weights: str | os.PathLike | None = None,
                    pretrained: bool = True, lite0_size: int = LITE0_SIZE) -> FeatureExtractor:
    """`lite0`: pooled EfficientNet-Lite0 features (1280) at `lite0_size` px, offline.
    `inception`: the standard FID network's pool features (2048) at 299 px; downloaded once unless
    `inception_weights` names a local file; `pretrained=False` gives random weights (tests)."""
    from ganforge.devices import pick_device

    dev = pick_device(device) if isinstance(device, str) else device
    if name == "lite0":
        return FeatureExtractor("lite0", 1280, _lite0_embed(lite0_size), dev)
    if name == "inception":
        net = _inception_network(inception_weights, pretrained).to(dev)
        return FeatureExtractor("inception", 2048, lambda b: net(b)[0], dev, batch_size=32)
    raise GanforgeError(f"unknown feature network {name!r}; choose one of {', '.join(FEATURES)}.")


# --------------------------------------------------------------------------------------------------
# Statistics on features: fake (generated) first, real (data) second.


def _check_pair(fake: Tensor, real: Tensor, least: int) -> None:
    if fake.ndim != 2 or real.ndim != 2 or fake.shape[1] != real.shape[1]:
        raise ValueError(f"expected two (N, D) feature tensors, got {tuple(fake.shape)} and {tuple(real.shape)}")
    if min(len(fake), len(real)) < least:
        raise GanforgeError(f"need at least {least} images on each side, got {len(fake)} generated and {len(real)} real.")


def fid(fake: Tensor, real: Tensor) -> float:
    """Frechet distance between Gaussians fitted to the two feature sets (biased for small N)."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    _check_pair(fake, real, 2)
    s1, s2 = fid_features_to_statistics(fake.double().cpu()), fid_features_to_statistics(real.double().cpu())
    return max(0.0, fid_statistics_to_metric(s1, s2, verbose=False)["frechet_inception_distance"])


def kid(fake: Tensor, real: Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel distance: the unbiased MMD^2 with the cubic polynomial kernel, mean and standard
    deviation over random subsets of `subset_size`, capped at half the smaller set so that the
    subsets differ. Unbiased, so its expectation is 0 for two samples of one distribution at any N."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    _check_pair(fake, real, 4)
    size = min(subset_size, min(len(fake), len(real)) // 2)
    out = kid_features_to_metric(fake.float().cpu(), real.float().cpu(), kid_subsets=subsets, kid_subset_size=size,
                                 rng_seed=seed, verbose=False)
    return out["kernel_inception_distance_mean"], out["kernel_inception_distance_std"]


def precision_recall(fake: Tensor, real: Tensor, k: int = 3) -> tuple[float, float]:
    """Precision: share of generated samples inside the real k-NN manifold; recall: the reverse."""
    from torch_fidelity.metric_prc import calculate_precision_recall_full

    _check_pair(fake, real, k + 1)
    return calculate_precision_recall_full(fake.float().cpu(), real.float().cpu(), neighborhood=k)


def density_coverage(fake: Tensor, real: Tensor, k: int = 5) -> tuple[float, float]:
    """Density: how many real k-NN balls hold each generated sample, / k (about 1 when matched);
    coverage: share of real balls holding at least one generated sample."""
    _check_pair(fake, real, k + 1)
    fake, real = fake.float().cpu(), real.float().cpu()
    radii = torch.cdist(real, real).kthvalue(k + 1, dim=1).values  # (R,), k+1 skips the self-distance
    inside = torch.cdist(real, fake) < radii[:, None]  # (R, F)
    return (inside.sum().item() / (k * len(fake)), inside.any(dim=1).float().mean().item())


def compare(fake: Tensor, real: Tensor, seed: int = 0, kid_subsets: int = 100) -> dict:
    """All distances between two feature sets."""
    kid_mean, kid_std = kid(fake, real, subsets=kid_subsets, seed=seed)
    p, r = precision_recall(fake, real)
    d, c = density_coverage(fake, real)
    return {"fid": fid(fake, real), "kid": kid_mean, "kid_std": kid_std, "precision": p, "recall": r, "density": d, "coverage": c}


def mean_pairwise_distance(features: Tensor) -> float:
    """Mean Euclidean distance over all distinct pairs: a batch's diversity."""
    n = len(features)
    if n < 2:
        return 0.0
    d = torch.cdist(features.float(), features.float())
    return (d.sum() / (n * (n - 1))).item()


# --------------------------------------------------------------------------------------------------
# Class coverage for the labelled built-in datasets


# dataset -> (classifier resolution, class names)
CLASSIFIED = {
    "digits": (8, [str(i) for i in range(10)]),
    "mnist": (28, [str(i) for i in range(10)]),
    "fashion-mnist": (28, ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]),
}
CLASSIFIER_VERSION = 1


@dataclass
class ClassCoverage:
    dataset: str
    classes: list[str]
    histogram: list[int]  # generated samples per predicted class
    data_distribution: list[float]  # the training data's class shares
    kl: float  # KL(generated class shares || data class shares), in nats
    classes_present: int  # classes holding at least a tenth of their share in the data
    classifier_accuracy: float  # on held-out real images

    def to_dict(self) -> dict:
        return asdict(self)


def _classifier(resolution: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(resolution * resolution, 256), nn.ReLU(), nn.Linear(256, classes))


def _classifier_input(images_u8: Tensor, resolution: int) -> Tensor:
    """uint8 (N, C, H, W) -> float (N, 1, r, r) in [0, 1], gray."""
    x = images_u8.float().div(255.0)
    if x.shape[1] == 3:
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    if x.shape[-1] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="area" if x.shape[-1] > resolution else "bilinear")
    return x


def _train_classifier(x: Tensor, y: Tensor, resolution: int, classes: int, epochs: int) -> tuple[nn.Module, float]:
    """A small MLP; 10% of the data held out for its accuracy. Seeded, and the global RNG is left alone."""
    with torch.random.fork_rng(), torch.enable_grad():
        torch.manual_seed(0)
        perm = torch.randperm(len(x))
        held = max(1, len(x) // 10)
        test, train = perm[:held], perm[held:]
        model = _classifier(resolution, classes)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        batch = min(256, len(train))
        for _ in range(epochs):
            order = train[torch.randperm(len(train))]
            for i in range(0, len(order) - batch + 1, batch):
                idx = order[i : i + batch]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            accuracy = (model(x[test]).argmax(1) == y[test]).float().mean().item()
    return model.eval(), accuracy


def load_classifier(dataset: str, data_root: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None) -> tuple[nn.Module, float]:
    """The dataset's class classifier and its held-out accuracy, trained on first use and cached as
    safetensors in `cache_dir` (default: <data root>/classifiers)."""
    from safetensors.torch import load_file, save

    from ganforge.fileio import atomic_write
    from ganforge.data import DEFAULT_DATA_ROOT, load_data

    if dataset not in CLASSIFIED:
        raise GanforgeError(f"class coverage needs a labelled built-in dataset ({', '.join(CLASSIFIED)}), not {dataset}.")
    resolution, names = CLASSIFIED[dataset]
    folder = Path(cache_dir) if cache_dir else Path(data_root or DEFAULT_DATA_ROOT) / "classifiers"
    path = folder / f"{dataset}-mlp-v{CLASSIFIER_VERSION}.safetensors"
    model = _classifier(resolution, len(names))
    if path.is_file():
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                accuracy = float((f.metadata() or {})["accuracy"])
            model.load_state_dict(load_file(str(path)))
            return model.eval(), accuracy
        except Exception:  # a damaged cache is retrained, not fatal
            pass
    # Train at the size the generators see (32 px for built-ins), brought down as samples will be.
    data = load_data(dataset, 32, 1, data_root)
    x, y = _classifier_input(data.images, resolution), data.labels.long()
    model, accuracy = _train_classifier(x, y, resolution, len(names), epochs=60 if dataset == "digits" else 3)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda f: f.write(save(tensors, metadata={"dataset": dataset, "accuracy": str(accuracy)})))
    return model, accuracy


@torch.no_grad()
def class_coverage(images: Tensor, dataset: str, data_labels: Tensor, data_root=None, cache_dir=None) -> ClassCoverage:
    """Which classes the images look like, against the data's own class shares `data_labels`."""
    resolution, names = CLASSIFIED.get(dataset, (None, None))
    if names is None:
        raise GanforgeError(f"class coverage needs a labelled built-in dataset ({', '.join(CLASSIFIED)}), not {dataset}.")
    model, accuracy = load_classifier(dataset, data_root, cache_dir)
    pred = model(_classifier_input(as_uint8(images), resolution)).argmax(1)
    hist = torch.bincount(pred, minlength=len(names)).double()
    data_share = torch.bincount(data_labels.long(), minlength=len(names)).double()
    data_share /= data_share.sum()
    share = hist / hist.sum()
    nz = share > 0
    kl = float((share[nz] * (share[nz] / data_share[nz]).log()).sum())
    present = int((share >= 0.1 * data_share).sum())
    return ClassCoverage(dataset, names, [int(h) for h in hist], [round(float(s), 5) for s in data_share], kl, present, accuracy)


# --------------------------------------------------------------------------------------------------
# Hooks for the training loop


def _fixed_real_subset(images: Tensor, n: int, seed: int) -> Tensor:
    idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
    return images[idx.to(images.device)].cpu()


@torch.no_grad()
def generate(generator: nn.Module, z: Tensor, batch: int = 128) -> Tensor:
    """Generator output (N, C, H, W) in [-1, 1] on the CPU, in eval mode; the mode is restored."""
    was_training = generator.training
    device = next(generator.parameters()).device
    generator.eval()
    try:
        return torch.cat([generator(z[i : i + batch].to(device)).float().cpu() for i in range(0, len(z), batch)])
    finally:
        generator.train(was_training)


class KIDTracker:
    """A cheap KID for `--eval-every`: `n` real images' features computed once, and the same `n`
    latent vectors each call, so changes come from the generator rather than the draw."""

    def __init__(self, real_images: Tensor, extractor: FeatureExtractor, n: int = 128, seed: int = 0, subsets: int = 20):
        self.extractor, self.subsets, self.seed = extractor, subsets, seed
        self.real = extractor(_fixed_real_subset(real_images, n, seed))  # (n, D)
        self.n = len(self.real)
        self._z = None

    def __call__(self, generator: nn.Module, latent_dim: int) -> dict:
        if self._z is None or self._z.shape[1] != latent_dim:
            self._z = torch.randn(self.n, latent_dim, generator=torch.Generator().manual_seed(self.seed + 12345))
        fake = self.extractor(generate(generator, self._z))
        mean, std = kid(fake, self.real, subsets=self.subsets, seed=self.seed)
        return {"kid": round(mean, 6), "kid_std": round(std, 6)}


@dataclass
class CollapseCheck:
    step: int
    diversity: float  # mean pairwise feature distance of the generated batch
    ratio: float  # diversity / the data's diversity at the same batch size
    collapsed: bool
    message: str | None  # a warning, set on the check where the ratio falls below the threshold


class CollapseDetector:
    """Mode collapse shows as generated samples that look alike: the mean pairwise feature
    distance of a fixed sample batch, relative to that of as many real images, falls.

    A freshly initialised generator's samples are alike too (about 0.1 of the data's diversity on
    digits), so a low ratio is only reported once the detector is armed: after the ratio has
    reached `threshold` once, or from step `warmup` on. Each fall below it is reported once.
    """

    def __init__(self, real_images: Tensor, extractor: FeatureExtractor, n: int = 64, threshold: float = 0.4,
                 warmup: int = 1000, seed: int = 0):
        self.extractor, self.threshold, self.warmup = extractor, threshold, warmup
        self._real = _fixed_real_subset(real_images, n, seed)
        self._real_diversity_at = {self._real.shape[-1]: mean_pairwise_distance(extractor(self._real))}  # by resolution
        self.healthy_seen = False
        self._warned = False

    def _diversity_of_data_at(self, resolution: int) -> float:
        """The real images' diversity when made as coarse as samples from a generator still growing
        at `resolution` (area-downsampled, then nearest-upsampled back): blurred pictures are less
        diverse in feature space, and comparing them with sharp ones would cry collapse."""
        if resolution not in self._real_diversity_at:
            from ganforge.data import to_float

            real = to_float(self._real) if self._real.dtype == torch.uint8 else self._real
            coarse = F.interpolate(F.adaptive_avg_pool2d(real, resolution), size=real.shape[-1], mode="nearest")
            self._real_diversity_at[resolution] = mean_pairwise_distance(self.extractor(coarse))
        return self._real_diversity_at[resolution]

    def check(self, step: int, images: Tensor, resolution: int | None = None) -> CollapseCheck:
        """`images`: the fixed sample batch, (N, C, H, W) in [-1, 1] (or uint8); `resolution`: the
        size the generator made them at, when smaller (progressive growing)."""
        diversity = mean_pairwise_distance(self.extractor(images))
        ratio = diversity / max(self._diversity_of_data_at(resolution or self._real.shape[-1]), 1e-12)
        collapsed = ratio < self.threshold
        message = None
        if not collapsed:
            self.healthy_seen, self._warned = True, False
        elif (self.healthy_seen or step >= self.warmup) and not self._warned:
            self._warned = True
            message = (f"possible mode collapse at step {step}: generated samples are {ratio:.0%} as diverse as the "
                       f"training images (warning below {self.threshold:.0%}).")
        return CollapseCheck(step, round(diversity, 5), round(ratio, 4), collapsed, message)


@dataclass
class Action:
    kind: str  # "skip_d_below": set TrainConfig.d_skip_below to value; "scale_lr_d": multiply D's lr by value
    value: float

    def describe(self) -> str:
        if self.kind == "skip_d_below":
            return f"skipping discriminator updates while its loss is below {self.value:g}"
        return f"multiplying the discriminator's learning rate by {self.value:g}"


@dataclass
class HealthEvent:
    step: int
    kind: str  # "d_winning"
    message: str
    actions: list[Action] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"step": self.step, "kind": self.kind, "message": self.message, "actions": [asdict(a) for a in self.actions]}


class DiscriminatorMonitor:
    """The discriminator is winning when, on at least `sustained` of the last `window` steps, its
    loss is near 0 (below `loss_d_below`) and D(G(z)) is near 0 (below `d_fake_below`): the
    generator then gets vanishing gradients and stops learning. Counting steps rather than
    averaging keeps one wild step from hiding, or faking, a sustained problem.

    After an event the window starts afresh, so a persisting problem is reported once per window.
    With `auto_balance`, each event carries the remedies: skip D's updates while its loss is below
    `skip_below`, and scale its learning rate by `lr_factor` (not below `min_lr_factor` overall).
    """

    def __init__(self, window: int = 200, loss_d_below: float = 0.1, d_fake_below: float = 0.05, sustained: float = 0.9,
                 auto_balance: bool = False, skip_below: float = 0.3, lr_factor: float = 0.5, min_lr_factor: float = 1 / 16):
        self.window, self.loss_d_below, self.d_fake_below, self.sustained = window, loss_d_below, d_fake_below, sustained
        self.auto_balance, self.skip_below, self.lr_factor, self.min_lr_factor = auto_balance, skip_below, lr_factor, min_lr_factor
        self.lr_scale = 1.0
        self._recent: deque[tuple[float, float]] = deque(maxlen=window)

    def update(self, step: int, loss_d: float, d_fake: float) -> HealthEvent | None:
        self._recent.append((loss_d, d_fake))
        if len(self._recent) < self.window:
            return None
        winning = sum(1 for l, f in self._recent if l < self.loss_d_below and f < self.d_fake_below)
        if winning < self.sustained * self.window:
            return None
        mean_loss = sum(l for l, _ in self._recent) / self.window
        mean_fake = sum(f for _, f in self._recent) / self.window
        self._recent.clear()
        message = (f"the discriminator is winning at step {step}: over the last {self.window} steps its loss averaged "
                   f"{mean_loss:.3f} and D(G(z)) {mean_fake:.3f}, so the generator learns little.")
        actions = []
        if self.auto_balance:
            actions.append(Action("skip_d_below", self.skip_below))
            if self.lr_scale * self.lr_factor >= self.min_lr_factor:
                self.lr_scale *= self.lr_factor
                actions.append(Action("scale_lr_d", self.lr_factor))
            message += " Auto-balance: " + "; ".join(a.describe() for a in actions) + "."
        else:
            message += " Try --auto-balance, a lower --lr-d, or --d-skip-below 0.3."
        return HealthEvent(step, "d_winning", message, actions)

    def state_dict(self) -> dict:
        return {"lr_scale": self.lr_scale, "recent": list(self._recent)}

    def load_state_dict(self, state: dict) -> None:
        self.lr_scale = float(state["lr_scale"])
        self._recent = deque((tuple(r) for r in state["recent"]), maxlen=self.window)


def apply_actions(actions: list[Action], trainer) -> None:
    """Apply auto-balance actions to a GANTrainer (its `opt_d` and its `cfg.d_skip_below`)."""
    for a in actions:
        if a.kind == "scale_lr_d":
            for group in trainer.opt_d.param_groups:
                group["lr"] *= a.value
        elif a.kind == "skip_d_below":
            trainer.cfg = replace(trainer.cfg, d_skip_below=max(trainer.cfg.d_skip_below, a.value))
        else:
            raise ValueError(f"unknown action {a.kind!r}")


def is_diverged(loss_d: float, loss_g: float) -> bool:
    """True when either loss is NaN or infinite: the weights are no longer usable."""
    return not (math.isfinite(loss_d) and math.isfinite(loss_g))
