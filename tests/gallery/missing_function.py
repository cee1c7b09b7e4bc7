"""A renamed function: the corr2d tests fail with 'does not define', the other functions still score."""
corr2d_v2 = corr2d
del corr2d
