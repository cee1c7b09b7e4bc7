"""What a sandbox may use: time, memory, processes, output, files."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    call_seconds: float = 10.0          # one call into the submission (tests may ask for more)
    start_seconds: float = 60.0         # running the notebook's cells
    submission_seconds: float = 300.0   # everything for one submission
    memory_mb: int = 2048               # beyond the interpreter's own footprint
    processes: int = 16                 # processes and threads of the sandbox user
    output_bytes: int = 32_000          # captured stdout + stderr kept for feedback
    file_mb: int = 64                   # largest file the sandbox may write
    open_files: int = 256
