"""For a hidden suite's "do not use X" test: which banned routines a notebook's function refers to, and calls.

A ban is on routines, not on words: the notebook's names are resolved through its imports and aliases
(``F`` -> ``torch.nn.functional``), a student's own helper called ``convolution`` is fine, and the calls are
recorded at run time too (a name built at run time is caught). ``names`` is the set of last components of a
dotted ``torch.`` path that the spec bans (``conv2d`` bans ``torch.conv2d`` and ``torch.nn.functional.conv2d``).
"""
from __future__ import annotations

import ast


def is_banned(path: str, names: set[str]) -> bool:
    return path.startswith("torch.") and path.rsplit(".", 1)[-1] in names


def dotted(node: ast.AST) -> str:
    """``F.conv2d`` -> 'F.conv2d'; '' for anything that is not a plain name or attribute chain."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def aliases(trees: list[ast.Module]) -> dict[str, str]:
    """What the notebook's names refer to: imports (``F`` -> torch.nn.functional) and names bound to them."""
    names = {}
    for node in (node for tree in trees for node in ast.walk(tree)):
        if isinstance(node, ast.Import):
            names.update({a.asname or a.name.split(".")[0]: a.name if a.asname else a.name.split(".")[0]
                          for a in node.names})
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
    for node in (node for tree in trees for node in ast.walk(tree)):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target = resolve(dotted(node.value), names)
            if target.startswith("torch."):
                names[node.targets[0].id] = target
    return names


def resolve(path: str, names: dict[str, str]) -> str:
    root, _, rest = path.partition(".")
    return ".".join(filter(None, [names.get(root, root), rest])) if path else ""


def routines_used(cells, function: str, names: set[str], allowed: frozenset[str] = frozenset()) -> set[str]:
    """The banned routines that ``function``, or a notebook function it calls (but those in ``allowed``: graded
    on their own), refers to."""
    trees = []
    for _, source in cells:
        try:
            trees.append(ast.parse(source))
        except SyntaxError:
            continue
    functions = {node.name: node for tree in trees for node in tree.body if isinstance(node, ast.FunctionDef)}
    bound = aliases(trees)
    seen, todo, used = set(allowed), [function], set()
    while todo:
        node = functions.get(todo.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        for sub in ast.walk(node):
            path = resolve(dotted(sub), bound)
            if is_banned(path, names):
                used.add(path)
            elif isinstance(sub, ast.Name):
                todo.append(sub.id)
    return used


# Run in the sandbox: each banned routine of these modules and layers records its calls while `{call}` runs.
RECORD = """
import torch, torch.nn as nn, torch.nn.functional as F, torch.nn.grad
BANNED = {names!r}
called, originals = [], []
def recorder(path, original):
    def recorded(*args, **kwargs):
        called.append(path)
        return original(*args, **kwargs)
    return recorded
for module, prefix in [(F, "torch.nn.functional"), (torch, "torch"), (torch.nn.grad, "torch.nn.grad")]:
    for name in dir(module):
        if name in BANNED and callable(getattr(module, name)):
            originals.append((module, name, getattr(module, name)))
            setattr(module, name, recorder(f"{{prefix}}.{{name}}", getattr(module, name)))
for layer in {layers}:
    originals.append((layer, "forward", layer.forward))
    layer.forward = recorder(f"torch.nn.{{layer.__name__}}", layer.forward)
try:
    got = {call}
finally:
    for module, name, original in originals:
        setattr(module, name, original)
result = (got, sorted(set(called)))
"""


def recording(call: str, names: set[str]) -> str:
    """Code for ``submission.run`` whose result is ``(the value of call, [the banned routines it called])``."""
    layers = "(" + ", ".join(f"nn.{name}" for name in sorted(names) if name[0].isupper()) + ",)"
    return RECORD.format(names=sorted(names), layers=layers, call=call)
