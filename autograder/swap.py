"""For the tests of a function built on another graded one: run it with the grader's version of the other.

A mistake in the building block is graded by its own tests; the function built on it is tested with the
grader's block swapped into the notebook's names for the duration of the call (the rule "No cascades" of
``autograder/suites/README.md``).
"""
import inspect
import textwrap

SWAP = '''
{imports}
{reference}
notebook = getattr({entry}, "__globals__", {{}})
notebook = notebook if notebook.get("__name__") == "__main__" else {{}}  # the notebook's own names
missing = object()
own = notebook.get("{name}", missing)
notebook["{name}"] = {name}
try:
{code}
finally:
    if own is missing:
        del notebook["{name}"]
    else:
        notebook["{name}"] = own
'''


def with_reference(code: str, entry: str, reference, imports: str) -> str:
    """``code`` to run in the sandbox while ``entry``'s notebook (e.g. ``Conv2D.forward``) sees the function
    ``reference`` (defined with ``imports``) under its own name in place of the notebook's."""
    return SWAP.format(imports=imports, reference=inspect.getsource(reference), entry=entry, name=reference.__name__,
                       code=textwrap.indent(code.strip(), "    "))
