"""Imported by the process the grading workers are forked from, before they are.

For a class, that is the grading pool's fork server, a fresh interpreter that never sees the class list: every
worker is forked from it, one per submission, so a sandbox (forked in turn from its worker's grading fork) holds
nothing about other students, not the class list, not another notebook's path. For one notebook graded alone
(Gradescope's), it is the grader itself, which knows of no other student. Importing this module does, once, what
every worker would otherwise repeat: the modules a sandbox starts with (torch), what running a suite needs
(:func:`autograder.runner.prepare`), and the garbage collector told to leave all of it alone, so that every fork
shares its pages.
"""
import gc

import torch

from autograder import runner
from autograder.sandbox.child import preload

preload()
runner.prepare()
torch.set_num_threads(1)  # the trusted side's checks are small: threads only slow them down
gc.freeze()
