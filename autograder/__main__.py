"""``python -m autograder VERB ...``: grade, merge, package or report (each verb is its own module)."""
from __future__ import annotations

import importlib
import sys

VERBS = {"grade": "autograder.grade", "merge": "autograder.merge", "package": "autograder.package",
         "report": "autograder.report"}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in VERBS:
        print(f"usage: python -m autograder {{{','.join(VERBS)}}} ...  (VERB --help for details)", file=sys.stderr)
        return 2
    return importlib.import_module(VERBS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
