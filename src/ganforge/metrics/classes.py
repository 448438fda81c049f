"""Class coverage for the labelled built-in datasets: which classes generated images look like,
judged by a small classifier trained once on the dataset and cached as safetensors.

    class_coverage(images, "digits", data.labels) -> ClassCoverage
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.errors import GanforgeError
from ganforge.fileio import atomic_write
from ganforge.images import luma
from ganforge.metrics.features import as_uint8


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


def classifier_input(images_u8: Tensor, resolution: int) -> Tensor:
    """uint8 (N, C, H, W) -> float (N, 1, r, r) in [0, 1], gray."""
    x = images_u8.float().div(255.0)
    if x.shape[1] == 3:
        x = luma(x)
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

    from ganforge import data

    if dataset not in CLASSIFIED:
        raise GanforgeError(f"class coverage needs a labelled built-in dataset ({', '.join(CLASSIFIED)}), not {dataset}.")
    resolution, names = CLASSIFIED[dataset]
    folder = Path(cache_dir) if cache_dir else Path(data_root or data.DEFAULT_DATA_ROOT) / "classifiers"
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
    labelled = data.load_data(dataset, 32, 1, data_root)
    x, y = classifier_input(labelled.images, resolution), labelled.labels.long()
    model, accuracy = _train_classifier(x, y, resolution, len(names), epochs=60 if dataset == "digits" else 3)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    try:
        atomic_write(path, lambda f: f.write(save(tensors, metadata={"dataset": dataset, "accuracy": str(accuracy)})))
    except GanforgeError:  # a cache that cannot be written: train the classifier again next time
        pass
    return model, accuracy


@torch.no_grad()
def class_coverage(images: Tensor, dataset: str, data_labels: Tensor, data_root=None, cache_dir=None) -> ClassCoverage:
    """Which classes the images look like, against the data's own class shares `data_labels`."""
    resolution, names = CLASSIFIED.get(dataset, (None, None))
    if names is None:
        raise GanforgeError(f"class coverage needs a labelled built-in dataset ({', '.join(CLASSIFIED)}), not {dataset}.")
    model, accuracy = load_classifier(dataset, data_root, cache_dir)
    pred = model(classifier_input(as_uint8(images), resolution)).argmax(1)
    hist = torch.bincount(pred, minlength=len(names)).double()
    data_share = torch.bincount(data_labels.long(), minlength=len(names)).double()
    data_share /= data_share.sum()
    share = hist / hist.sum()
    nz = share > 0
    kl = float((share[nz] * (share[nz] / data_share[nz]).log()).sum())
    present = int((share >= 0.1 * data_share).sum())
    return ClassCoverage(dataset, names, [int(h) for h in hist], [round(float(s), 5) for s in data_share], kl, present, accuracy)
