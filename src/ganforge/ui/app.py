"""The page of `ganforge ui`: Train, Watch, Sample (with latent walks and export) and Stylize, each
calling what the command line calls.

    from ganforge.ui.app import build
    build(Path("runs")).launch(server_name="127.0.0.1")

Training runs as `ganforge train` in a child process (`ganforge.ui.jobs`); sampling and style
transfer run in the page's own process through `ganforge.sample_images`, `ganforge.stylize` and
`ganforge.stylize_video`.
Every handler answers a mistake with the command line's own sentence, as text on the page.
"""

from __future__ import annotations

import inspect
import queue
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import gradio as gr

from ganforge.data import BUILTIN_DATASETS, dataset_name
from ganforge.errors import GanforgeError
from ganforge.gan.config import ARCHS, PRESETS, SIZES, TrainConfig
from ganforge.options import settings
from ganforge.ui.jobs import Jobs
from ganforge.ui.runs import RunView, list_runs

UP_FRONT = ("preset", "size", "steps", "arch")  # the rest of TrainConfig goes in "Advanced"
REFRESH_SECONDS = 2.0
SERIES = ("D loss", "G loss", "D(real)", "D(G(z))")  # the curves of the Watch page (and KID when logged)


def _page_options() -> dict:
    """Options of `launch`: fonts of this machine and no link to gradio's site, so that the page asks
    nothing of the internet."""
    system = ["ui-sans-serif", "system-ui", "sans-serif"]
    return {"theme": gr.themes.Default(font=system, font_mono=["ui-monospace", "monospace"]), "footer_links": ["api", "settings"]}


PAGE_OPTIONS = _page_options()


def _advanced_settings():
    return [s for s in settings(TrainConfig) if s.opt.cli and s.name not in UP_FRONT]


def _component(s):
    """A form field for one training setting, from the same declaration as its CLI option."""
    label, info = s.flag, s.opt.help
    default = None if s.default is inspect.Parameter.empty else s.default
    if s.type is bool:
        return gr.Checkbox(value=bool(default), label=label, info=info)
    if s.opt.choices:
        choices = [str(c) for c in s.opt.choices]
        return gr.Dropdown(choices=(["auto"] if default is None else []) + choices, value="auto" if default is None else str(default),
                           label=label, info=info)
    if s.type in (int, float) and default is not None:
        return gr.Number(value=default, label=label, info=info, precision=0 if s.type is int else None)
    return gr.Textbox(value="" if default is None else str(default), label=label, info=info,
                      placeholder=s.opt.default_text or "auto")


def train_arguments(values: dict) -> list[str]:
    """CLI arguments for the settings that differ from their defaults (so presets still fill the rest)."""
    args = []
    for s in settings(TrainConfig):
        if s.name not in values or not s.opt.cli:
            continue
        value, default = values[s.name], None if s.default is inspect.Parameter.empty else s.default
        if value in ("", "auto", None):
            continue
        if s.type is bool:
            if bool(value) != bool(default):
                args.append(s.flag if value else f"--no-{s.flag[2:]}")
            continue
        if s.type is int or (s.opt.choices and isinstance(default, int)):
            value = int(float(value))
        elif s.type is float:
            value = float(value)
        if value != default and str(value) != str(default):
            args += [s.flag, str(value)]
    return args


def number(value, label: str) -> float:
    """A number field's value; a field left empty is refused in a sentence (gradio gives None)."""
    if value is None:
        raise GanforgeError(f"{label} is empty; type a number.")
    return value


def _in_background(result: dict, work):
    """Run work(callback) in a thread and yield what it passes to callback as it comes; afterwards
    result holds "value" (what work returned) or "error" (one line for the page)."""
    updates: queue.Queue = queue.Queue()

    def run():
        try:
            result["value"] = work(updates.put)
        except GanforgeError as exc:
            result["error"] = _error(exc)
        except Exception as exc:  # the page stays up; the message says what went wrong
            result["error"] = f"Error: {type(exc).__name__}: {exc}"

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    while thread.is_alive() or not updates.empty():
        try:
            yield updates.get(timeout=0.2)
        except queue.Empty:
            continue
    thread.join()


def _error(exc: Exception) -> str:
    return f"Error: {' '.join(str(exc).split())}"


def build(runs_root: Path) -> gr.Blocks:
    runs_root = Path(runs_root).resolve()
    jobs = Jobs(runs_root)
    advanced = _advanced_settings()

    def run_path(name: str | None) -> Path | None:
        """The run folder of a name chosen on the page; only folders directly in the runs folder."""
        if not name:
            return None
        path = runs_root / Path(name).name
        if not path.is_dir():
            raise GanforgeError(f"{name}: no such run in {runs_root}.")
        return path

    # ---- Train ----

    def start(kind, builtin, folder, uploads, preset, size, steps, arch, *rest):
        values = dict(zip([s.name for s in advanced], rest))
        values.update(preset=preset if preset != "none" else None, size=size, steps=steps, arch=arch)
        try:
            args = train_arguments(values)
            if kind == "upload":
                files = [Path(getattr(f, "name", f)) for f in (uploads or [])]
                if not files:
                    raise GanforgeError("choose pictures (or a zip of them) to upload first.")
                run = jobs.start(args, "uploads", uploads=files)
            else:
                data = builtin if kind == "built-in" else (folder or "").strip()
                if not data:
                    raise GanforgeError("type the path of a folder of pictures first.")
                run = jobs.start([data, *args], dataset_name(data))
        except GanforgeError as exc:
            return _error(exc), gr.Dropdown()
        return f"Training {run.name}; watch it below.", gr.Dropdown(choices=list_runs(runs_root), value=run.name)

    def stop():
        run = jobs.stop()
        if run is None:
            return "Nothing is training."
        error = jobs.job.last_error() if jobs.job else None
        return f"Stopped {run.name}: {error or 'finished'}" if error else f"{run.name} finished."

    def resume(name, steps):
        if not name:
            return "Choose a run to resume under Watch."
        try:
            run = jobs.resume(run_path(name), int(steps) if steps else None)
        except GanforgeError as exc:
            return _error(exc)
        return f"Resumed {run.name}."

    # The API names each advanced field after its setting (/start's lr_g, ema, ...), not param_N.
    start.__signature__ = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in ("kind", "builtin", "folder", "uploads", *UP_FRONT)]
        + [inspect.Parameter(s.name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for s in advanced])

    # ---- Watch ----

    def watch(name, grid_index):
        runs = list_runs(runs_root)
        name = Path(name).name if name else None
        if not name or not (runs_root / name).is_dir():
            return (gr.Dropdown(choices=runs), "Choose a run.", None, gr.Slider(minimum=0, maximum=1, value=0), None, None, "", "")
        view = RunView(runs_root / name)
        grids = view.grids()
        newest = str(grids[-1][1]) if grids else None
        index = min(int(grid_index or 0), max(len(grids) - 1, 0))
        chosen = str(grids[index][1]) if grids else None
        import pandas as pd

        # Before the first metrics row, one point of every series: the plot keeps the series it first saw.
        curves = pd.DataFrame(view.curves() or [{"step": 0, "value": 0.0, "series": name} for name in SERIES])
        status = view.progress()
        job = jobs.job
        if job is not None and job.run_dir.name == name:
            status += " · training" if job.running else ""
            if (error := job.last_error()) and not job.running:
                status += f" · {error}"
        return (gr.Dropdown(choices=runs, value=name), status, newest,
                gr.Slider(minimum=0, maximum=max(len(grids) - 1, 1), value=index, step=1,
                          label=f"sample grid {index + 1} of {len(grids)}" + (f" (step {grids[index][0]})" if grids else "")),
                chosen, curves, view.warnings(), "\n".join(view.files()))

    # ---- Sample ----

    def sample(name, upload, seed, n, as_grid, truncation=1.0, class_=""):
        from ganforge import sample_images
        from ganforge.images import save_grid, save_pngs

        try:
            source = sample_source(name, upload)
            if source is None:
                return "Choose a run, or upload a generator (.safetensors).", None, None
            images = sample_images(source, n=int(number(n, "How many")), seed=int(number(seed, "Seed")),
                                   truncation=float(number(truncation, "--truncation")), class_=(class_ or "").strip() or None)
        except GanforgeError as exc:
            return _error(exc), None, None
        out = Path(tempfile.mkdtemp(prefix="ganforge-sample-"))
        grid = save_grid(images, out / "samples.png")
        archive = None
        if not as_grid:
            pngs = save_pngs(images, out / "pngs")
            archive = out / "samples.zip"
            with zipfile.ZipFile(archive, "w") as z:
                for p in pngs:
                    z.write(p, p.name)
        drawn = f", class {class_.strip()}" if (class_ or "").strip() else ""
        return f"{len(images)} pictures from {source.name}, seed {int(seed)}{drawn}.", str(grid), str(archive or grid)

    def sample_source(name, upload) -> Path | None:
        return Path(getattr(upload, "name", upload)) if upload else run_path(name)

    def walk(name, upload, seed, truncation, class_, grid, frames_per_point):
        """`ganforge interpolate`: an MP4 of a walk through the points of seeds seed, seed+1, ..."""
        from ganforge.gan.walk import interpolate

        try:
            source = sample_source(name, upload)
            if source is None:
                return "Choose a run, or upload a generator (.safetensors).", None
            out = Path(tempfile.mkdtemp(prefix="ganforge-walk-")) / "walk.mp4"
            done = interpolate(source, out, fps=24, n=4, seed=int(number(seed, "Seed")), loop=True, grid=(grid or "1x1").strip(),
                               frames_per_point=int(number(frames_per_point, "--frames-per-point")), size=128,
                               truncation=float(number(truncation, "--truncation")),
                               class_=(class_ or "").strip() or None)
        except GanforgeError as exc:
            return _error(exc), None
        return f"A walk through 4 points from seed {int(seed)}: {done.frames} frames, {done.seconds:.1f} s.", str(out)

    def export(name, upload, format_):
        """`ganforge export`: the generator as ONNX or a torch.export program."""
        from ganforge.gan.export import export_generator

        try:
            source = sample_source(name, upload)
            if source is None:
                return "Choose a run, or upload a generator (.safetensors).", None
            stem = source.stem if source.is_file() else source.name
            done = export_generator(source, Path(tempfile.mkdtemp(prefix="ganforge-export-")) / f"{stem}.{format_}")
        except GanforgeError as exc:
            return _error(exc), None
        checked = f"; {done.checked_with} draws PyTorch's pictures within {done.max_difference:.1g}" if done.max_difference is not None else ""
        return f"Exported {done.path.name} ({done.size_bytes / 1e6:.1f} MB{checked}).", str(done.path)

    # ---- Stylize ----

    from ganforge.style import stylize as stylize_fn

    style_defaults = {s.name: s.default for s in settings(stylize_fn)}

    def stylize(content, styles, style_weights, size, steps, style_weight, content_weight, preserve_color, backbone, bar=gr.Progress()):
        if not content or not styles:
            yield "Choose a photo and at least one painting.", None, None
            return
        result: dict = {}
        shown = 0.0
        for progress in _in_background(result, lambda callback: stylize_fn(
                content, [Path(getattr(s, "name", s)) for s in styles], size=int(size), steps=int(steps),
                style_weight=float(style_weight), content_weight=float(content_weight), preserve_color=preserve_color,
                backbone=backbone, style_weights=style_weights or None, callback=callback)):
            bar((progress.step, progress.total), desc="optimising", unit="steps")
            if time.time() - shown > 1.0 or progress.step == progress.total:
                shown = time.time()
                yield (f"step {progress.step} of {progress.total} (scale {progress.scale} of {progress.scales}, "
                       f"{progress.size[0]}x{progress.size[1]})", progress.image(), None)
        if "error" in result:
            yield result["error"], None, None
            return
        out = Path(tempfile.mkdtemp(prefix="ganforge-stylize-")) / "stylized.png"
        result["value"].save(out)
        yield "Done.", str(out), str(out)

    from ganforge.stylevideo import stylize_video as stylize_video_fn

    video_defaults = {s.name: s.default for s in settings(stylize_video_fn)}

    def stylize_clip(clip, styles, style_weights, size, steps, style_weight, content_weight, preserve_color, backbone, frame_steps,
                     temporal_weight, bar=gr.Progress()):
        """`ganforge stylize CLIP PAINTING -o out.mp4`: frame by frame, each shown when done."""
        if not clip or not styles:
            yield "Choose a video and at least one painting.", None, None
            return
        result: dict = {}
        out = Path(tempfile.mkdtemp(prefix="ganforge-stylize-video-")) / "stylized.mp4"
        for progress in _in_background(result, lambda callback: stylize_video_fn(
                clip, [Path(getattr(s, "name", s)) for s in styles], out, size=int(size), steps=int(steps),
                frame_steps=int(frame_steps), temporal_weight=float(temporal_weight), style_weight=float(style_weight),
                content_weight=float(content_weight), preserve_color=preserve_color, backbone=backbone,
                style_weights=style_weights or None, callback=callback)):
            bar((progress.index + 1, progress.total), desc="stylising", unit="frames")
            yield f"frame {progress.index + 1} of {progress.total} ({progress.seconds:.1f} s)", progress.image(), None
        if "error" in result:
            yield result["error"], None, None
            return
        video = result["value"]
        yield f"Done: {video.frames} frames, {video.width}x{video.height} at {video.fps:g} fps.", gr.skip(), str(video.path)

    with gr.Blocks(title="ganforge", analytics_enabled=False) as page:
        gr.Markdown("# ganforge\nTrain a GAN on your own pictures, watch it learn, sample it, and repaint photos in a painting's style.")
        with gr.Tab("Train"):
            with gr.Row():
                kind = gr.Radio(["built-in", "folder", "upload"], value="built-in", label="Pictures")
                builtin = gr.Dropdown(list(BUILTIN_DATASETS), value="digits", label="Built-in dataset")
                folder = gr.Textbox(label="Folder of pictures (a path on this machine)")
            uploads = gr.File(label="Upload pictures, or one zip of them", file_count="multiple", file_types=["image", ".zip"])
            with gr.Row():
                preset = gr.Dropdown(["none", *PRESETS], value="none", label="--preset", info="small: for folders of 100 to 2,000 pictures")
                size = gr.Dropdown(["auto", *map(str, SIZES)], value="auto", label="--size")
                steps = gr.Number(value=TrainConfig.steps, precision=0, label="--steps")
                arch = gr.Dropdown(list(ARCHS), value=TrainConfig.arch, label="--arch")
            with gr.Accordion("Advanced", open=False):
                fields = [_component(s) for s in advanced]
            with gr.Row():
                start_button = gr.Button("Start", variant="primary")
                stop_button = gr.Button("Stop (checkpoint)")
                resume_steps = gr.Number(value=0, precision=0, label="Resume to step (0: the run's own)")
                resume_button = gr.Button("Resume the watched run")
            status = gr.Markdown()
        with gr.Tab("Watch"):
            with gr.Row():
                run_choice = gr.Dropdown(list_runs(runs_root), value=None, label="Run", allow_custom_value=True)
                progress = gr.Markdown()
            with gr.Row():
                newest = gr.Image(label="Newest sample grid", type="filepath", interactive=False)
                with gr.Column():
                    grid_slider = gr.Slider(0, 1, value=0, step=1, label="sample grids over time")
                    grid = gr.Image(label="Sample grid", type="filepath", interactive=False)
            curves = gr.LinePlot(x="step", y="value", color="series", label="Losses and D's outputs", height=340)
            health = gr.Textbox(label="Health warnings", lines=3, interactive=False)
            files = gr.Textbox(label="Files of the run", lines=6, interactive=False)
        with gr.Tab("Sample"):
            with gr.Row():
                sample_run = gr.Dropdown(list_runs(runs_root), value=None, label="Run", allow_custom_value=True)
                sample_upload = gr.File(label="…or a generator (.safetensors)", file_types=[".safetensors", ".pt"])
            with gr.Row():
                sample_seed = gr.Number(value=0, precision=0, label="Seed")
                sample_n = gr.Number(value=64, precision=0, label="How many")
                sample_truncation = gr.Number(value=1.0, label="--truncation", info="below 1: less variety, cleaner pictures")
                sample_class = gr.Textbox(value="", label="--class", placeholder="every class in turn", info="a conditional run's class, by name or index")
                sample_grid_only = gr.Checkbox(value=True, label="One grid (else a zip of PNG files)")
            sample_button = gr.Button("Sample", variant="primary")
            sample_status = gr.Markdown()
            sample_image = gr.Image(label="Samples", type="filepath", interactive=False)
            sample_file = gr.File(label="Download")
            with gr.Accordion("Latent walk video (ganforge interpolate)", open=False):
                with gr.Row():
                    walk_grid = gr.Textbox(value="2x4", label="--grid", info="ROWSxCOLUMNS walks side by side")
                    walk_frames = gr.Number(value=24, precision=0, label="--frames-per-point")
                    walk_button = gr.Button("Make the video")
                walk_status = gr.Markdown()
                walk_video = gr.Video(label="Walk (MP4, loops back to its start)", interactive=False)
            with gr.Accordion("Export the generator (ganforge export)", open=False):
                with gr.Row():
                    export_format = gr.Dropdown(["onnx", "pt2"], value="onnx", label="--format",
                                                info="onnx: onnxruntime and other ONNX runtimes; pt2: torch.export, PyTorch alone")
                    export_button = gr.Button("Export")
                export_status = gr.Markdown()
                export_file = gr.File(label="Download")
        with gr.Tab("Stylize"):
            with gr.Row():
                photo = gr.Image(label="Photo", type="filepath")
                paintings = gr.File(label="Painting(s)", file_count="multiple", file_types=["image"])
            with gr.Row():
                style_weights = gr.Textbox(label="Blend weights, one per painting (e.g. 0.7,0.3)", placeholder="equal")
                st_size = gr.Number(value=style_defaults["size"], precision=0, label="--size")
                st_steps = gr.Number(value=style_defaults["steps"], precision=0, label="--steps")
                st_style = gr.Number(value=style_defaults["style_weight"], label="--style-weight")
                st_content = gr.Number(value=style_defaults["content_weight"], label="--content-weight")
                st_color = gr.Dropdown(["none", "luminance", "histogram"], value=style_defaults["preserve_color"], label="--preserve-color")
                st_backbone = gr.Dropdown(["lite0", "vgg19"], value=style_defaults["backbone"], label="--backbone")
            stylize_button = gr.Button("Stylize", variant="primary")
            stylize_status = gr.Markdown()
            stylized = gr.Image(label="Result (updates as it is optimised)", type="filepath", interactive=False)
            stylized_file = gr.File(label="Download")
            with gr.Accordion("A video instead of a photo: each frame starts from the previous result, so it does not flicker", open=False):
                with gr.Row():
                    clip = gr.Video(label="Video", sources=["upload"])
                    with gr.Column():
                        sv_frame_steps = gr.Number(value=video_defaults["frame_steps"], precision=0, label="--frame-steps",
                                                   info="steps for each frame after the first (--steps is the first's)")
                        sv_temporal = gr.Number(value=video_defaults["temporal_weight"], label="--temporal-weight",
                                                info="higher: steadier, less restyled from frame to frame")
                        video_button = gr.Button("Stylize the video", variant="primary")
                video_status = gr.Markdown()
                with gr.Row():
                    video_frame = gr.Image(label="Latest frame", type="filepath", interactive=False)
                    video_result = gr.Video(label="Result", interactive=False)

        start_button.click(start, [kind, builtin, folder, uploads, preset, size, steps, arch, *fields], [status, run_choice], api_name="start")
        stop_button.click(stop, None, status, api_name="stop")
        resume_button.click(resume, [run_choice, resume_steps], status, api_name="resume")
        watch_outputs = [run_choice, progress, newest, grid_slider, grid, curves, health, files]
        run_choice.change(watch, [run_choice, grid_slider], watch_outputs, api_name="watch")
        grid_slider.release(watch, [run_choice, grid_slider], watch_outputs, api_name=False)
        gr.Timer(REFRESH_SECONDS).tick(watch, [run_choice, grid_slider], watch_outputs, api_name=False)
        sample_button.click(sample, [sample_run, sample_upload, sample_seed, sample_n, sample_grid_only, sample_truncation, sample_class],
                            [sample_status, sample_image, sample_file], api_name="sample")
        walk_button.click(walk, [sample_run, sample_upload, sample_seed, sample_truncation, sample_class, walk_grid, walk_frames],
                          [walk_status, walk_video], api_name="walk")
        export_button.click(export, [sample_run, sample_upload, export_format], [export_status, export_file], api_name="export")
        stylize_button.click(stylize, [photo, paintings, style_weights, st_size, st_steps, st_style, st_content, st_color, st_backbone],
                             [stylize_status, stylized, stylized_file], api_name="stylize")
        video_button.click(stylize_clip, [clip, paintings, style_weights, st_size, st_steps, st_style, st_content, st_color, st_backbone,
                                          sv_frame_steps, sv_temporal], [video_status, video_frame, video_result], api_name="stylize_video")
    return page
