"""Run untrusted notebook code in a confined child process and talk to it in plain data."""
from autograder.sandbox.limits import Limits

__all__ = ["Limits", "Sandbox", "SubmissionError"]


def __getattr__(name: str):
    """The session (and torch with it) is imported on first use: ``Limits`` alone stays light for the
    command line's argument checks and ``--help``."""
    if name in ("Sandbox", "SubmissionError"):
        from autograder.sandbox import session

        return getattr(session, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
