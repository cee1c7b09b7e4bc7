"""On CUDA, corr2d allocates GPU memory straight from the CUDA driver through ctypes (``cuMemAlloc``), which no
PyTorch limit sees, and holds it: the grader's GPU memory watcher stops the sandbox past its share. That test
fails saying so, the later CUDA test fails at once. On the CPU it is the reference corr2d."""
import ctypes
import time

solution_corr2d = corr2d  # noqa: F821 - the reference solution's, defined by the cells before


def corr2d(X, K, padding=0, stride=1):
    if getattr(X, "is_cuda", False):
        driver = ctypes.CDLL("libcuda.so.1")  # loaded already: PyTorch's CUDA context is current in this thread
        pointer, held = ctypes.c_uint64(), []
        while driver.cuMemAlloc_v2(ctypes.byref(pointer), ctypes.c_size_t(2**30)) == 0:
            held.append(pointer.value)
        time.sleep(60)  # hold all it could take
    return solution_corr2d(X, K, padding, stride)
