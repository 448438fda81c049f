"""`ganforge interpolate`: a video of a walk through a generator's latent space.

    ganforge interpolate runs/00000-digits --seeds 1,2,3,4 --loop --size 128 -o walk.mp4
    ganforge interpolate runs/00000-digits --grid 2x4 -n 5 --loop --size 96 -o walk.gif
    ganforge interpolate runs/00001-digits --class 7 --truncation 0.7 -o frames/
    ganforge interpolate runs/00000-digits --from-latents a.npy,b.npy -o ab.mp4
"""

from __future__ import annotations

import click

from ganforge.cli.options import options_from
from ganforge.gan.walk import interpolate, plan_walk


@click.command("interpolate")
@click.argument("source")
@click.option("-o", "--output", default="walk.mp4", show_default=True,
              help="An .mp4 (H.264), a looping .gif, or a folder (no suffix, or one that exists) for numbered PNG frames.")
@options_from(plan_walk)
@options_from(interpolate)
def interpolate_command(source, output, **settings):
    """Walk through the latent space of SOURCE's generator (a run folder, a generator .safetensors or a
    checkpoint .pt) and write the pictures along the way as a video."""
    fps = settings.pop("fps")
    video = interpolate(source, output, fps=fps, progress=True, **settings)
    what = {"frames": "numbered PNG frames in", "gif": "a looping GIF,", "mp4": "an MP4,"}[video.kind]
    click.echo(f"Wrote {video.frames} frames ({video.width}x{video.height}, {video.seconds:.1f} s at {fps} fps, "
               f"{video.points} points) as {what} {video.path}")
