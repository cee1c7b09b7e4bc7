"""Hundreds of megabytes of output: captured, truncated, and grading goes on."""
import sys

chunk = "spam " * 20_000 + "\n"
for _ in range(3_000):  # 300 MB
    sys.stdout.write(chunk)
