"""``python -m autograder.sandbox SOCKET_FD OUTPUT_FD NAMESPACES``: a fresh sandbox, replacing one that died
(``NAMESPACES``: the JSON of :data:`.namespaces.STATE`, as the process that ran it left it)."""
import json
import sys

from autograder.sandbox import namespaces
from autograder.sandbox.child import main

namespaces.STATE.update(json.loads(sys.argv[3]))
main(int(sys.argv[1]), int(sys.argv[2]), entered=True)
