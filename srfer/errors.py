"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class SrferError(Exception):
    """A user-facing failure: bad input, missing weights, wrong checkpoint.

    The message is a complete sentence meant to be printed as-is, without a traceback.
    """
