"""An exception while the notebook runs: noted, the cell's function is missing, the rest still counts."""
del conv_output_shape
# %%
import a_module_that_does_not_exist


def conv_output_shape(input_size, kernel_size, padding=0, stride=1):
    return (1, 1)
