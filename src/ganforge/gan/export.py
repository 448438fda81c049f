"""A trained generator as a file that runs without ganforge: ONNX (for onnxruntime and the many
runtimes that read ONNX) or a torch.export program (.pt2, for PyTorch alone).

    from ganforge.gan.export import export_generator
    done = export_generator("runs/00000-digits", "generator.onnx")
    print(done.max_difference)   # onnxruntime against PyTorch on the same latents

The exported network takes `z` (batch, latent_dim) float32, and for a class-conditional generator
`labels` (batch,) int64 (class indices 0..K-1), and gives `images` (batch, C, H, W) float32 in
[-1, 1]; the batch size is free. A run folder's generator is its moving average (EMA) where the
run kept one, in eval mode (BatchNorm uses its running statistics). What the file holds is
described beside the graph: ONNX metadata_props, or `ganforge.json` among a .pt2's extra files.

TorchScript is not offered: torch 2.14 marks torch.jit.trace, save and load deprecated (each
warns, the last one in the user's own program too), and torch.export, which replaces it, gives
the same "PyTorch without this package" file with a dynamic batch and no warnings.
"""

from __future__ import annotations

import errno
import importlib
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import torch
from torch import nn

from ganforge.errors import GanforgeError
from ganforge.fileio import atomic_write_bytes, write_error
from ganforge.gan.families.base import ModelConfig
from ganforge.gan.sampling import balanced_labels
from ganforge.options import Opt, check
from ganforge.version import __version__

SUFFIXES = {".onnx": "onnx", ".pt2": "pt2"}
MIN_OPSET = 18  # torch's ONNX exporter writes 18 and up; below, its conversion fails or silently stays at 18
TRACE_BATCH = 2  # the example batch the graph is captured with; 1 would let torch.export fix the batch size
CHECK_BATCHES = (1, 5)  # verification runs batch sizes other than TRACE_BATCH, so a fixed batch size shows
CHECK_TOLERANCE = 1e-3  # the largest difference from PyTorch's pictures (range 2) accepted as the same
NEEDS_ONNX = 'ganforge export needs onnx: pip install "ganforge[export]".'

FORMAT = Opt("What to write: onnx (onnxruntime and other ONNX runtimes) or pt2 (torch.export, for PyTorch without ganforge).",
             long="--format", choices=tuple(SUFFIXES.values()), default_text="from -o's suffix, else onnx")
OPSET = Opt(f"ONNX operator set version, at least {MIN_OPSET}; lower ones run on older runtimes (onnxruntime 1.15 reads 18, 1.17 reads 20).",
            min=MIN_OPSET, default_text="torch's default")


@dataclass(frozen=True)
class Exported:
    """What export_generator wrote and how it checked it."""

    path: Path
    format: str  # "onnx" or "pt2"
    config: ModelConfig
    step: int
    opset: int | None  # ONNX only
    checked_with: str  # "onnxruntime", "onnx.checker" (no onnxruntime installed) or "torch.export.load"
    max_difference: float | None  # largest |exported - PyTorch| over CHECK_BATCHES; None when not run
    size_bytes: int


def output_format(path: str | os.PathLike, format_: str | None) -> tuple[Path, str]:
    """(path, format) for `-o path` and `--format`: the suffix names the format, a path without one
    gets the format's suffix; a contradiction or an unknown suffix is refused."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not suffix:
        format_ = format_ or "onnx"
        return path.with_name(path.name + "." + format_), format_
    if suffix not in SUFFIXES:
        hint = " (.pt is a ganforge checkpoint's suffix)" if suffix == ".pt" else ""
        raise GanforgeError(f"-o {path}: the exported file's name must end in .onnx (ONNX) or .pt2 (torch.export), not {suffix}{hint}.")
    if format_ is not None and SUFFIXES[suffix] != format_:
        raise GanforgeError(f"-o {path} ends in {suffix}, which means {SUFFIXES[suffix]}, but --format asks for {format_}; drop one or make them agree.")
    return path, SUFFIXES[suffix]


def _check_writable(path: Path) -> None:
    """The plainest reasons a write would fail, said before the export's seconds of work; anything
    else is caught by the write itself."""
    if path.is_dir():
        raise write_error(path, IsADirectoryError(errno.EISDIR, "is a directory"))
    folder = next((p for p in [path.parent, *path.parent.parents] if p.exists()), None)
    if folder is not None and not folder.is_dir():
        raise write_error(path, NotADirectoryError(errno.ENOTDIR, "not a directory"))
    if folder is not None and not os.access(folder, os.W_OK):
        raise write_error(path, PermissionError(errno.EACCES, "permission denied"))


def metadata(cfg: ModelConfig, step: int) -> dict[str, str]:
    """What a user of the exported file needs to know, as strings (numbers as digits, lists as JSON)."""
    inputs = "z: float32 (batch, latent_dim), from N(0, 1)"
    if cfg.classes:
        inputs += f"; labels: int64 (batch,), class indices 0..{cfg.num_classes - 1} (see classes)"
    return {
        "ganforge_version": __version__,
        "arch": cfg.arch,
        "latent_dim": str(cfg.latent_dim),
        "image_size": str(cfg.size),
        "channels": str(cfg.channels),
        "classes": json.dumps(list(cfg.classes)),
        "step": str(step),
        "inputs": inputs,
        "outputs": "images: float32 (batch, channels, image_size, image_size) in [-1, 1]; (x + 1) * 127.5 gives 0..255",
        "output_range": "[-1, 1]",
        "model_config": json.dumps(cfg.to_dict()),
    }


class _Sampler(nn.Module):
    """The generator behind fixed input names, whatever its family calls its arguments."""

    def __init__(self, generator: nn.Module, conditional: bool):
        super().__init__()
        self.generator, self.conditional = generator, conditional

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z, labels) if self.conditional else self.generator(z)  # (B, C, H, W)


def _inputs(cfg: ModelConfig, n: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Latents (n, latent_dim), and class labels (n,) covering every class for a conditional generator."""
    z = torch.randn(n, cfg.latent_dim, generator=torch.Generator().manual_seed(seed))
    return (z, balanced_labels(n, cfg.num_classes)) if cfg.classes else (z,)


def _names(cfg: ModelConfig) -> list[str]:
    return ["z", "labels"] if cfg.classes else ["z"]


def _dynamic_batch(cfg: ModelConfig) -> tuple[dict, ...]:
    batch = torch.export.Dim("batch", min=1)
    return tuple({0: batch} for _ in _names(cfg))


def _need_onnx():
    try:
        import onnx

        importlib.import_module("onnxscript")  # torch's ONNX exporter is built on it
    except ImportError:
        raise GanforgeError(NEEDS_ONNX) from None
    return onnx


def _max_difference(run, sampler: nn.Module, cfg: ModelConfig) -> float:
    """The largest |run(inputs) - sampler(inputs)| over batches of every size in CHECK_BATCHES."""
    worst = 0.0
    for i, n in enumerate(CHECK_BATCHES):
        inputs = _inputs(cfg, n, seed=1 + i)
        with torch.no_grad():
            want = sampler(*inputs)
        try:
            got = torch.as_tensor(run(inputs))
        except Exception as exc:  # the runtime's own error types; a fixed batch size shows up here
            raise GanforgeError(f"the exported generator fails for a batch of {n} ({str(exc).strip().splitlines()[0][:200]}); "
                                "please report this with the generator's architecture.") from None
        if got.shape != want.shape:
            raise GanforgeError(f"the exported generator drew {tuple(got.shape)} for a batch of {n} instead of {tuple(want.shape)}; "
                                "this generator cannot be exported with a free batch size.")
        worst = max(worst, (got.float() - want).abs().max().item())
    return worst


def _onnx_bytes(sampler: nn.Module, cfg: ModelConfig, meta: dict[str, str], opset: int | None) -> tuple[bytes, int, str, float | None]:
    """(the ONNX file, its opset, what checked it, max difference from PyTorch)."""
    onnx = _need_onnx()
    if opset is not None and opset > onnx.defs.onnx_opset_version():
        raise GanforgeError(f"--opset {opset} is newer than the installed onnx {onnx.__version__} knows (up to {onnx.defs.onnx_opset_version()}).")
    # dynamo=True, torch.export's exporter: the TorchScript-based one is deprecated and warns, and
    # this one keeps the batch dimension free from a dynamic_shapes spec. verbose=False keeps its
    # step-by-step progress lines off the user's terminal.
    with warnings.catch_warnings():
        # z and labels share one batch dimension, so naming the second "batch" as well is a no-op
        # the exporter remarks on.
        warnings.filterwarnings("ignore", message=r"# The axis name: batch will not be used, since it shares the same shape constraints",
                                category=UserWarning)
        program = torch.onnx.export(sampler, _inputs(cfg, TRACE_BATCH), None, dynamo=True, verbose=False, opset_version=opset,
                                    input_names=_names(cfg), output_names=["images"], dynamic_shapes=_dynamic_batch(cfg))
    model = program.model_proto
    written = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and written != opset:  # the exporter keeps its own version when conversion fails
        raise GanforgeError(f"torch's ONNX exporter could not write operator set {opset} for this generator (it wrote {written}); try another --opset.")
    # The exporter stamps the newest IR version its onnx knows, which older runtimes refuse outright
    # (onnxruntime 1.17 reads IR 9 at most); the oldest one the operator set allows loads everywhere
    # the operator set does, and nothing in these graphs needs a newer one (the checker below agrees).
    model.ir_version = min(model.ir_version, onnx.helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True))
    onnx.helper.set_model_props(model, meta)
    model.doc_string = f"ganforge {cfg.arch} generator. Inputs: {meta['inputs']}. Outputs: {meta['outputs']}."
    if model.ByteSize() >= 2**31:  # protobuf's limit; ONNX would need its weights in a second file
        raise GanforgeError("this generator is over 2 GB, more than one ONNX file can hold; export it with --format pt2.")
    data = model.SerializeToString()
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise GanforgeError(f"the exported ONNX model fails onnx.checker ({str(exc).strip().splitlines()[0][:200]}).") from None
    try:
        import onnxruntime as ort
    except ImportError:
        return data, written, "onnx.checker", None
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: its notes on unused initializers are not the user's business
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise GanforgeError(f"onnxruntime {ort.__version__} cannot load the exported model ({str(exc).strip().splitlines()[0][:200]}); "
                            "a lower --opset may help.") from None
    names = _names(cfg)
    difference = _max_difference(lambda inputs: session.run(["images"], {k: v.numpy() for k, v in zip(names, inputs)})[0], sampler, cfg)
    return data, written, "onnxruntime", difference


def _pt2_bytes(sampler: nn.Module, cfg: ModelConfig, meta: dict[str, str]) -> tuple[bytes, float]:
    try:
        program = torch.export.export(sampler, _inputs(cfg, TRACE_BATCH), dynamic_shapes=_dynamic_batch(cfg))
    except Exception as exc:  # torch.export's own error types (a fixed batch size, an untraceable layer)
        raise GanforgeError(f"torch.export could not capture this generator ({str(exc).strip().splitlines()[0][:200]}); "
                            "please report this with the generator's architecture.") from None
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={"ganforge.json": json.dumps(meta)})
    data = buffer.getvalue()
    loaded = torch.export.load(io.BytesIO(data)).module()
    return data, _max_difference(lambda inputs: loaded(*inputs), sampler, cfg)


def export_generator(source: str | os.PathLike, output: str | os.PathLike,
                     format_: Annotated[str | None, FORMAT] = None,
                     opset: Annotated[int | None, OPSET] = None) -> Exported:
    """Write the generator of `source` (a run folder, a generator .safetensors or a checkpoint .pt)
    to `output` as ONNX or a torch.export program, with a free batch size, after checking that the
    file loads and draws what PyTorch draws. The format follows `format_`, else `output`'s suffix."""
    check(export_generator, locals())
    path, format_ = output_format(output, format_)
    if format_ != "onnx" and opset is not None:
        raise GanforgeError(f"--opset is for ONNX files; {path} is a {format_} file.")
    if torch.__version__ < "2.6":  # torch.onnx.export(dynamo=True, dynamic_shapes=...) as used here
        raise GanforgeError(f"ganforge export needs torch 2.6 or newer (this is {torch.__version__}): pip install -U torch.")
    if format_ == "onnx":
        _need_onnx()  # before the generator loads: a missing package is the first thing to say
    _check_writable(path)
    from ganforge.gan.checkpoint import load_generator

    generator, cfg, step = load_generator(source)
    sampler = _Sampler(generator.cpu().eval(), bool(cfg.classes)).eval()
    meta = metadata(cfg, step)
    if format_ == "onnx":
        data, opset, checked_with, difference = _onnx_bytes(sampler, cfg, meta, opset)
    else:
        (data, difference), checked_with = _pt2_bytes(sampler, cfg, meta), "torch.export.load"
    if difference is not None and not difference <= CHECK_TOLERANCE:  # also NaN
        raise GanforgeError(f"the exported {format_} file draws pictures that differ from PyTorch's by up to {difference:.2g} "
                            f"(more than {CHECK_TOLERANCE:g}), so {path} was not written; please report this with the generator's architecture.")
    atomic_write_bytes(path, data)
    return Exported(path, format_, cfg, step, opset, checked_with, difference, len(data))
