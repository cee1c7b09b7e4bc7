"""Its folder and its /dev/shm filled, then memory hoarded until something stops it: what the two tmpfs hold is
memory the container is charged for, outside the sandbox's address-space cap, so the grader fits both in the
sandbox's share (autograder/sandbox/limits.py). Graded in Gradescope's 768 MB by tests/test_gradescope.py (a
`container_` entry is not graded in the gallery's class): the OOM killer never strikes, the hoard fails with
MemoryError, and only this function loses its points."""
import os


def corr2d_multi_in_out(X, K):
    filled = {}
    for folder in (os.getcwd(), "/dev/shm"):
        filled[folder] = 0
        try:
            for n in range(100_000):
                with open(f"{folder}/filler-{n}", "wb") as filler:
                    filler.write(b"\1" * 2**20)
                filled[folder] += 1
        except OSError:
            pass
    print("filled", ", ".join(f"{'/dev/shm' if folder == '/dev/shm' else 'its folder'} {mb} MB"
                              for folder, mb in filled.items()), flush=True)
    hoard = []
    while True:  # 1 MB at a time, touched
        hoard.append(bytearray(2**20))
