"""A cell that does not parse: noted in the feedback, its function is missing, the rest still counts."""
del pool2d
# %%
def pool2d(X, pool_size, mode="max", stride=None, padding=0)
    return X
