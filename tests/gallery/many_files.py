"""A million empty files in its own folder: the folder is a tmpfs of a few thousand files, so the function fails at
once, saying so, and nothing of it reaches the machine's disk or outlives grading."""


def conv_output_shape(*args, **kwargs):
    for i in range(1_000_000):
        open(f"empty-{i}", "w").close()
