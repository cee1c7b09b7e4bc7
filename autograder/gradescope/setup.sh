#!/usr/bin/env bash
# Gradescope runs this once, as root and with internet, when it builds the autograder's image.
# Its Ubuntu images have python3 3.10 (22.04) or 3.12 (24.04); the course pins Python 3.11. uv makes the
# grader's venv with the image's Python 3.11 if it has one, else with a standalone CPython 3.11 it
# downloads. Then torch.txt from PyTorch's CPU-only index and requirements.txt from PyPI. The three
# *.txt files are the project's own pins (python -m autograder package writes them).
# AUTOGRADER_ROOT and UV (a uv to use instead of installing one) can be overridden (tests).
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
TORCH_INDEX="https://download.pytorch.org/whl/cpu"
# Managed Pythons go where the sandbox's unprivileged user can read them (uv's default is under /root).
export UV_PYTHON_INSTALL_DIR="${UV_PYTHON_INSTALL_DIR:-/opt/uv-python}"

if [ -z "${UV:-}" ]; then
  apt-get update -qq
  apt-get install -y -qq python3 python3-venv  # any version: it only installs uv
  python3 -m venv "$ROOT/uv"
  "$ROOT/uv/bin/python" -m pip install -q -r "$SOURCE/uv.txt"
  UV="$ROOT/uv/bin/uv"
fi
"$UV" venv --python 3.11 "$ROOT/venv"
"$UV" pip install --python "$ROOT/venv/bin/python" --index-url "$TORCH_INDEX" -r "$SOURCE/torch.txt"
"$UV" pip install --python "$ROOT/venv/bin/python" -r "$SOURCE/requirements.txt"
"$ROOT/venv/bin/python" -c '
import sys, torch
assert sys.version_info[:2] == (3, 11), f"Python {sys.version} in the venv, not 3.11"
assert torch.version.cuda is None, f"torch {torch.__version__} is a CUDA build; the grader has no GPU"
print(f"Python {sys.version.split()[0]}, torch {torch.__version__} (CPU)")'
chmod -R go-rwx "$SOURCE"  # the hidden tests: readable by root only
