"""`ganforge ui`: a web page (gradio) to train, watch, sample and stylise.

    jobs.py   training runs in child processes: start, stop (with a checkpoint), resume
    runs.py   what a run folder shows: progress, sample grids, curves, health warnings, files
    app.py    the page itself, calling the same library functions as the command line
"""
