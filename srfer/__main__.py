"""`python -m srfer …` (and `torchrun … -m srfer train-…`): the same CLI as the `srfer` command."""

from srfer.cli import app

if __name__ == "__main__":
    app()
