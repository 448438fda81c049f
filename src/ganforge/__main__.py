"""`python -m ganforge ...` is `ganforge ...` (and what `torchrun -m ganforge` runs)."""

from ganforge.cli.main import main

if __name__ == "__main__":
    main()
