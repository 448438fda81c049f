"""Training throughput of `ganforge train` against a plain eager PyTorch DCGAN loop.

    python benchmarks/train_throughput.py              # 1,000 photos, 64 px, batch 64, 3 epochs

Both sides train the same DCGAN widths (ngf = ndf = 64, nz = 100) on the same folder of 1,000 JPEG
photos of mixed sizes for 3 epochs, and both are timed from the first file read to the last
optimizer step. The baseline follows the pytorch/examples dcgan script: torchvision ImageFolder
with Resize/CenterCrop/ToTensor/Normalize, a DataLoader with 2 workers, Sigmoid + BCELoss, and a
generator step that back-propagates into the discriminator's weights too.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from common import photo_folder


def baseline_models(nz: int, ngf: int, ndf: int, nc: int = 3):
    G = nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh(),
    )
    D = nn.Sequential(
        nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
    )
    return G, D


def run_baseline(folder: Path, size: int, batch: int, epochs: int, width: int, workers: int) -> tuple[float, int]:
    import torchvision.datasets as dset
    import torchvision.transforms as T

    torch.manual_seed(0)
    t0 = time.perf_counter()
    dataset = dset.ImageFolder(str(folder), transform=T.Compose([T.Resize(size), T.CenterCrop(size), T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)]))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)
    G, D = baseline_models(100, width, width)
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    images = 0
    for _ in range(epochs):
        for real, _ in loader:
            b = real.size(0)
            # update D
            D.zero_grad()
            loss_real = bce(D(real).view(-1), torch.ones(b))
            loss_real.backward()
            fake = G(torch.randn(b, 100, 1, 1))
            loss_fake = bce(D(fake.detach()).view(-1), torch.zeros(b))
            loss_fake.backward()
            opt_d.step()
            # update G
            G.zero_grad()
            loss_g = bce(D(fake).view(-1), torch.ones(b))
            loss_g.backward()
            opt_g.step()
            images += b
    return time.perf_counter() - t0, images


def run_ganforge(folder: Path, size: int, batch: int, steps: int, width: int) -> tuple[float, int]:
    from ganforge.gan.config import TrainConfig
    from ganforge.gan.loop import train

    cfg = TrainConfig(data=str(folder), size=size, batch_size=batch, steps=steps, g_width=width, d_width=width,
                      sample_every=10**9, checkpoint_every=10**9, log_every=10**9, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        train(cfg, Path(tmp) / "run", sinks=[])
        return time.perf_counter() - t0, steps * batch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers for the baseline (pytorch/examples uses 2)")
    ap.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "ganforge-bench-photos")
    args = ap.parse_args()

    folder = photo_folder(args.folder / str(args.images), args.images)
    steps = args.epochs * (args.images // args.batch_size)
    print(f"{args.images} JPEG photos in {folder}, {args.size} px, batch {args.batch_size}, {args.epochs} epochs ({steps} steps), "
          f"widths {args.width}, {torch.get_num_threads()} threads")
    base_s, base_n = run_baseline(folder, args.size, args.batch_size, args.epochs, args.width, args.workers)
    ours_s, ours_n = run_ganforge(folder, args.size, args.batch_size, steps, args.width)
    print(f"{'':24}{'seconds':>10}{'images/s':>10}")
    print(f"{'eager PyTorch baseline':24}{base_s:10.1f}{base_n / base_s:10.1f}")
    print(f"{'ganforge train':24}{ours_s:10.1f}{ours_n / ours_s:10.1f}")
    print(f"speed-up: {(ours_n / ours_s) / (base_n / base_s):.2f}x")


if __name__ == "__main__":
    main()
