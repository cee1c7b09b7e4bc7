"""``python -m autograder.sandbox SOCKET_FD OUTPUT_FD``: a fresh sandbox, replacing one that died."""
import sys

from autograder.sandbox.child import main

main(int(sys.argv[1]), int(sys.argv[2]))
