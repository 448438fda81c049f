"""Training GANs and drawing from them.

    config.py      TrainConfig: every training setting, its default, help text and bounds
    families/      the network families (one file each) over shared layers; networks.py lists them
    augment.py     DiffAugment and the adaptive augmentation probability
    losses.py      BCE and hinge losses, the R1 penalty
    trainer.py     GANTrainer: one D step and one G step, and the runtime state
    health.py      checks that decide (D winning, mode collapse, KID, divergence)
    events.py      what training tells its sinks; sinks.py: the run folder and the terminal
    run.py         start() and resume(): everything before the first step
    loop.py        fit(), train(), resume_training(): the steps and their cadences
    rundir.py      where each file of a run folder lives
    checkpoint.py  checkpoints (.pt) and shareable generators (.safetensors)
    sampling.py    drawing pictures from a generator
    plots.py, report.py   curves and the one-page HTML report
"""
