"""The exceptions the CLI turns into one line and a non-zero exit (never a traceback)."""


class SrferError(Exception):
    """A user-facing failure: bad input, missing weights, wrong checkpoint.

    The message is a complete sentence meant to be printed as-is, without a traceback.
    """


class TrainingInterrupted(Exception):
    """Raised after Ctrl-C (or SIGTERM) once the interrupted run's state is safely on disk."""

    def __init__(self, checkpoint) -> None:
        super().__init__(f"interrupted; state saved to {checkpoint} (continue with --resume)")
        self.checkpoint = checkpoint
