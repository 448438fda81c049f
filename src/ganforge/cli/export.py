"""`ganforge export`: a trained generator as a file that runs without ganforge.

    ganforge export runs/00003-cats -o cats.onnx
    ganforge export runs/00004-digits --format pt2 -o digits.pt2
    ganforge export runs/00003-cats/generator.safetensors -o cats.onnx --opset 18
"""

from __future__ import annotations

import click

from ganforge.cli.options import options_from
from ganforge.gan.export import CHECK_BATCHES, export_generator


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


@click.command("export")
@click.argument("source")
@options_from(export_generator)
@click.option("-o", "--output", help="Write the exported generator here; its suffix (.onnx or .pt2) names the format "
                                     "[default: generator.onnx, or generator.pt2 with --format pt2].")
def export_command(source, format_, opset, output):
    """Export the generator of SOURCE (a run folder, a generator .safetensors or a checkpoint .pt) as
    ONNX or a torch.export program, taking latents z (batch, latent_dim) [and class labels (batch,)]
    and giving images (batch, C, H, W) in [-1, 1]."""
    done = export_generator(source, output or f"generator.{format_ or 'onnx'}", format_, opset)
    cfg = done.config
    what = f"{cfg.arch} generator ({cfg.size} px, {cfg.channels} channel{'s' if cfg.channels > 1 else ''}, latent {cfg.latent_dim}"
    what += f", {cfg.num_classes} classes" if cfg.classes else ""
    kind = f"ONNX opset {done.opset}" if done.format == "onnx" else "torch.export program"
    if done.max_difference is None:
        checked = "checked with onnx.checker (install onnxruntime to compare its pictures with PyTorch's)"
    else:
        sizes = " and ".join(map(str, CHECK_BATCHES))
        checked = f"{done.checked_with} draws PyTorch's pictures within {done.max_difference:.1e} (batch sizes {sizes})"
    click.echo(f"Exported the {what}, step {done.step}) to {done.path} ({kind}, {_size(done.size_bytes)}); {checked}.")

