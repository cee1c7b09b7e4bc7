"""``python -m autograder VERB ...``: the verbs are listed in :data:`autograder.VERBS`, each its own module."""
from __future__ import annotations

import importlib
import sys

from autograder import VERBS

USAGE = "usage: python -m autograder {" + ",".join(VERBS) + "} ..."


def usage() -> str:
    width = max(map(len, VERBS))
    return "\n".join([USAGE, "", "commands:", *(f"  {verb:<{width}}  {what}" for verb, what in VERBS.items()), "",
                      "python -m autograder VERB --help describes a command's arguments and options."])


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(usage())
        return 0
    if not argv or argv[0] not in VERBS:
        problem = f"unknown command {argv[0]!r}" if argv else "no command given"
        print(f"python -m autograder: error: {problem}\n\n{usage()}", file=sys.stderr)
        return 2
    try:
        return importlib.import_module(f"autograder.{argv[0]}").main(argv[1:])
    except KeyboardInterrupt:  # Ctrl-C: every result is written whole (atomically), so nothing is half done
        print(f"\npython -m autograder {argv[0]}: interrupted; the results written so far are kept, and the same "
              "command grades the rest", file=sys.stderr)
        return 130
    except ModuleNotFoundError as error:  # not the venv's Python
        print(f"python -m autograder: error: this Python ({sys.executable}) has no module {error.name!r}: run "
              "`make setup` once, then use .venv/bin/python -m autograder", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
