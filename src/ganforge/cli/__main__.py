"""`python -m ganforge.cli ...`, as earlier releases were run, is `ganforge ...`."""

from ganforge.cli.main import main

if __name__ == "__main__":
    main()
