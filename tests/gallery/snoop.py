"""Reading the hidden tests, writing into submissions and results, killing the grader: all refused."""
import os

attempts = []
for action, path in [("read", "{SUITE_FILE}"), ("write", "{SUBMITTED}/honest/conv_basics/conv_basics.ipynb"),
                     ("write", "{OUT}/honest/conv_basics/results.json"), ("write", "{SUBMITTED}/planted.txt")]:
    try:
        with open(path, "r" if action == "read" else "w") as handle:
            handle.write("0") if action == "write" else attempts.append(handle.read())
        attempts.append(f"{action} {path}: allowed")
    except OSError as error:
        attempts.append(f"{action} {path}: {type(error).__name__}")
attempts.append(f"parent: {os.getppid()}")  # 0: outside its namespace (kill(0) would be its own process group)
for pid in {os.getppid(), 1} - {0}:
    try:
        os.kill(pid, 9)
        attempts.append(f"kill {pid}: allowed")
    except OSError as error:
        attempts.append(f"kill {pid}: {type(error).__name__}")
print("\n".join(attempts))
