"""`ganforge train`.

    ganforge train                                  # DCGAN on the built-in digits, 32 px
    ganforge train ~/Pictures/cats --size 64 --steps 20000
    ganforge train --resume runs/00003-cats --steps 30000
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.core import ParameterSource

from ganforge.cli.options import options_from, values_for
from ganforge.errors import GanforgeError
from ganforge.gan.config import TrainConfig
from ganforge.options import flag


@click.command("train")
@click.argument("data", required=False)
@click.option("--data", "data_option", metavar="DATA", help="The same as the DATA argument; with --resume, where the run's pictures are now.")
@options_from(TrainConfig)
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), help="Run folder [default: runs/NNNNN-<data>].")
@click.option("--resume", type=click.Path(file_okay=False, path_type=Path), help="Continue the run in this folder from its latest checkpoint.")
@click.option("--nproc-per-node", type=click.IntRange(min=1), help="Train on this many processes on this machine (one per GPU), "
              "started by torchrun's launcher; --batch-size stays the global batch.")
@click.option("--nnodes", type=click.IntRange(min=1), default=1, help="Machines in the job (run the same command on each).")
@click.option("--node-rank", type=click.IntRange(min=0), help="Which machine this is, 0 for the first [default: the machines agree among themselves].")
@click.option("--rdzv-endpoint", metavar="HOST:PORT", help="Where the machines meet: an address of the first machine and a free port.")
@click.option("--dist-timeout", type=click.FloatRange(min=1), default=600, show_default=True,
              help="Seconds a training process waits for a silent other before the job stops.")
@click.pass_context
def train_command(ctx, data, data_option, run_dir, resume, nproc_per_node, nnodes, node_rank, rdzv_endpoint, dist_timeout, **params):
    """Train a GAN on DATA: a folder of your pictures, or digits (default), mnist, fashion-mnist, cifar10.

    The run folder's path is the last line printed.
    """
    if nproc_per_node is not None or nnodes > 1 or node_rank is not None or rdzv_endpoint is not None:
        from ganforge.cli.launch import launch

        argv = ctx.find_root().command.argv
        argv = argv[argv.index("train") + 1:]
        launch(argv, nproc_per_node or 1, nnodes, node_rank, rdzv_endpoint)
        return
    from ganforge.cli.launch import write_report
    from ganforge.gan.distributed import is_main_process
    from ganforge.gan.events import Started
    from ganforge.gan.loop import TrainingInterrupted, resume_training, train
    from ganforge.gan.run import RESUMABLE
    from ganforge.gan.sinks import ConsoleSink

    if data is not None and data_option is not None:
        raise GanforgeError("give the pictures once: as DATA or as --data, not both.")
    data = data if data is not None else data_option
    given = {n for n in params if ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE}

    def report_run_dir(event):  # for `--nproc-per-node`'s launcher, should the job fail
        if isinstance(event, Started):
            write_report(run_dir=str(event.run_dir))

    sinks = [ConsoleSink(), report_run_dir]
    try:
        if resume is not None:
            extra = sorted(flag(n) for n in given - set(RESUMABLE)) + ["--run-dir"] * (run_dir is not None)
            if extra:
                raise GanforgeError(f"--resume continues with the run's own settings; only {', '.join(map(flag, RESUMABLE))} may be given "
                                    f"(not {', '.join(extra)}).")
            out = resume_training(resume, data=data, **{n: params[n] for n in RESUMABLE if n in given}, sinks=sinks, timeout=dist_timeout)
        else:
            cfg = TrainConfig(data=data if data is not None else TrainConfig.data, **values_for(TrainConfig, params))
            out = train(cfg, run_dir, sinks=sinks, explicit=given, timeout=dist_timeout)
    except TrainingInterrupted as exc:
        if is_main_process():
            click.echo(str(exc), err=True)
            click.echo(str(exc.run_dir))
        sys.exit(128 + int(exc.signum))
    if is_main_process():
        click.echo(str(out))
