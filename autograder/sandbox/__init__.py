"""Run untrusted notebook code in a confined child process and talk to it in plain data."""
from autograder.sandbox.limits import Limits
from autograder.sandbox.session import Sandbox, SubmissionError

__all__ = ["Limits", "Sandbox", "SubmissionError"]
