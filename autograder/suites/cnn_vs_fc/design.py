"""The student's own net, ``DesignNet()``, rebuilt on the trusted side from what it is.

In the sandbox, :func:`describe` traces the net with ``torch.fx`` (PyTorch's own graph capture) and sends
back plain data: the graph's nodes (an op, a target, arguments), each ``torch.nn`` layer as numbers
(:func:`layers.spec`) and the state_dict. Here :class:`Rebuilt` builds that graph again from a fixed list of
layers, functions and tensor methods, first on PyTorch's ``meta`` device (no memory, no arithmetic) to
measure its output shape and cost, on one image and on the batch it will run at, then with the submission's
tensors. The test images never leave
this side, and no code of the submission runs here: an unknown layer or function is refused by name.

It is trained as the notebook's comparison cell trains it (:data:`COMPARISON`, :func:`trained`): the same
loaders, seed and epochs, and the student's evaluate after each epoch, since each DataLoader pass draws from torch's
global generator; on the same platform that gives the very weights the notebook ends with
(``tests/test_design_training.py``). Its accuracy is measured on 2,000 held-out images (``mnist_heldout/``, made by
``data/make_mnist_heldout.py``: MNIST's own test digits, none of them in the sample students have, with the
sample's test set's class balance); the feedback gives the notebook's test accuracy beside it.

The steps come from ``python bench/bench_design.py --seeds 6``, which trains candidate nets through :func:`trained`
and reports held-out accuracy (lowest / median / highest over seeds 0-5: a seed changes the data order and the
initialisation, all that chance does to a net) and the notebook's test accuracy (load average near 11):

    net           params  mult-adds   held-out               notebook's test set
    dense17       13,525     13,498   88.8 / 89.8 / 90.4     89.9 / 91.5 / 91.8   a dense net in the budget
    lecture       13,686    934,760   95.0 / 95.9 / 97.0     94.8 / 96.2 / 96.8   the lecture's: no activation
    tiny           2,202    110,080   95.0 / 95.8 / 96.9     94.8 / 95.6 / 96.5   (conv 5×5, ReLU, pool) × 2
    lenet          5,994    322,560   95.8 / 96.7 / 97.5     96.5 / 96.9 / 97.2   the same, 8 and 16 channels

One net moves by 2 points from one seed to another, as much as a good design gains on the lecture's ConvNet in
4 epochs on 8,000 images: no step can tell them apart by one training without deciding by chance. So the steps
separate what a seed cannot move: 80% (it learns), 87% (as a dense net in the budget learns: 1.8 points below the
lowest dense17 reached) and 93% (as a ConvNet learns: 2.6 points above the highest dense17 reached and 2.0 below
the lowest of the ConvNets). Design is graded by the budgets and the activation; the accuracy steps check that the
design learns like a ConvNet. The same net's held-out and notebook figures differ by up to 2.5 points on one seed
(dense17; 0.7 at most for the ConvNets), which is why the feedback gives both.

BatchNorm: the averages training leaves (momentum 0.1: the last few batches, each under older weights) lag behind
weights that SGD at lr 0.03 still moves, so the held-out accuracy graded on them varied by chance. :func:`calibrate`
measures each BatchNorm's statistics anew for the final weights, on the training images (never the test images),
before the held-out accuracy is measured; the notebook's figure stays as printed. ``--seeds 5`` (load average 5-9;
held-out graded / held-out on training's averages / the notebook's figure, lowest / median / highest):

    lenet-bn           97.0 / 97.2 / 97.8   96.2 / 96.6 / 97.4   96.0 / 97.0 / 97.5   conv-BN-ReLU-pool × 2
    residual-bn-gap    88.6 / 93.2 / 95.0   69.8 / 81.7 / 88.4   69.5 / 81.2 / 86.8   tests/realistic's first draft
    residual-bn-flat   11.2 / 89.5 / 93.7   11.2 / 89.0 / 93.8   11.2 / 89.5 / 93.7   its second draft

What chance still moves is the net's own training: residual-bn-gap's accuracy with batch statistics, which no
running average enters, spread as widely (88.7-94.7%, 5 seeds: it learns slowly in 4 epochs, its training loss
0.30 where lenet-bn's is 0.05), and residual-bn-flat diverges on some seeds in the first epoch (loss 1.6-3.3 after
it, where lenet-bn's is 0.33-0.38; seed 2 ends predicting one class, 11.2%), most likely as its residual sums,
unnormalised, feed 784 features of growing size into one linear layer, for which steps at lr 0.03 with momentum
0.9 are too large: the same net without the residual reached 96.7-97.6%, without the BatchNorms 95.2-96.7%. Those
are the nets' own outcomes: the student's notebook shows them (the same weights) before submitting.

Global average pooling learns too slowly for 4 epochs in this budget (``--seeds 3``, load average 9-13, held out):
``strided-gap`` (3×3 convolutions of stride 2, 12, 24 and 48 channels, then the mean over positions) 79.2 / 80.9 /
83.6%, ``strided-gap-bn`` (the same with BatchNorm) 93.7 / 94.1 / 94.2%: both within 1.5 points of a step, so
``tests/realistic`` has no such design (``tests/test_design_rebuild.py`` rebuilds four forms of it). The same
convolutions flattened into the linear layer (``realistic:strided_design``, 8, 16 and 32 channels) reached 95.0 /
95.2 / 96.0% over 5 seeds.

The parameter budget is the lecture ConvNet's; the multiply-add budget bounds the training time. Under half a CPU
(``--cpu-share 0.5``, load average 2.9) an epoch took 3.0 s for the lecture's ConvNet (934,760 multiply-adds, near
the budget) and 1.9 s for the solution's: 4 epochs stay near a tenth of the 120 s the training may take, and the
packaged grading of the whole solution took 19-20 s in 640 MB and half a CPU (``bench/bench_gradescope.py``).
"""
from __future__ import annotations

import inspect
import operator

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx.node import _get_qualified_name

import layers
import reference
from layers import spec  # noqa: F401 - describe() calls it, here as in the sandbox

PARAMETERS = 13_686            # the lecture's ConvNet's: the same budget, a better design
MULTIPLY_ADDS = 1_000_000      # per image; the lecture's ConvNet does 934,760
EPOCHS = 4                     # of the grader's training, the notebook's comparison (test_training.py)
STEPS = (80, 87, 93)           # held-out test accuracy in percent: each step reached is worth its points
MAX_NODES = 1000               # in the traced graph
BATCH = 100                    # the most images the trusted side runs a rebuilt net on at once
MAX_VALUES = 400_000           # per image, in the intermediate results alive at once (the lecture's ConvNet: 15,680):
                               # the trusted side's memory, at most BATCH × 1.6 MB; a net in the multiply-add budget
                               # stays below it unless it widens 28×28 images to over 255 channels
MAX_COST = 10 * MULTIPLY_ADDS  # multiply-adds per image the trusted side evaluates (over the budget: graded as such)
MAX_INT = 2 ** 31              # the largest integer traced arithmetic may hold (sizes and shapes are far smaller)
MAX_DEPTH = 8                  # of the lists nested in a node's arguments
IMAGE = (1, 28, 28)
LEARNED = 100                  # values in all that training may leave as they were (a fixed filter), besides the
                               # biases a BatchNorm cancels
ACTIVATION_FUNCTIONS = [torch.relu, F.relu, F.relu6, F.leaky_relu, F.elu, F.selu, F.celu, F.gelu, F.silu, F.mish,
                        torch.tanh, F.tanh, torch.sigmoid, F.sigmoid, F.hardswish, F.hardtanh, F.softplus,
                        torch.clamp]
PRODUCTS = [torch.mul, operator.mul, operator.truediv, operator.floordiv]
FUNCTIONS = {_get_qualified_name(f): f for f in ACTIVATION_FUNCTIONS + PRODUCTS + [
    F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d, F.dropout, F.dropout2d,
    F.softmax, F.log_softmax, torch.flatten, torch.cat, torch.mean, torch.add, operator.getitem, operator.add,
    operator.sub, getattr]}
ACTIVATION_NAMES = {_get_qualified_name(f) for f in ACTIVATION_FUNCTIONS}
PRODUCT_NAMES = {_get_qualified_name(f) for f in PRODUCTS} | {"mul", "div"}  # functions and methods
METHODS = {"view", "reshape", "flatten", "size", "dim", "unsqueeze", "squeeze", "permute", "transpose",
           "contiguous", "float", "mean", "sum", "clamp", "add", "mul", "sub", "div", "relu", "sigmoid", "tanh",
           "softmax", "log_softmax"}
ACTIVATION_METHODS = {"relu", "sigmoid", "tanh", "clamp"}
ATTRIBUTES = {"shape", "ndim"}  # what getattr(x, ...) may read
ARITHMETIC = {_get_qualified_name(f) for f in (operator.add, operator.sub, operator.mul, operator.truediv,
                                               operator.floordiv)}  # on numbers and tensors only ([0] * 10**12)
PROBE = torch.linspace(-3, 3, 601)  # an activation must not be affine on these values


class NotRebuildable(AssertionError):
    """The description asks for something the grader does not build: the message says what."""


# --- in the sandbox (this source is sent there, with layers.spec) -----------------------------------------

def plain_argument(value):
    """A torch.fx argument as plain data: a node by its name, a slice as its three parts."""
    from torch.fx.node import Node
    if isinstance(value, Node):
        return {"__node__": value.name}
    if isinstance(value, slice):
        return {"__slice__": [plain_argument(value.start), plain_argument(value.stop), plain_argument(value.step)]}
    if isinstance(value, (tuple, list)):
        return type(value)(plain_argument(item) for item in value)
    if isinstance(value, dict):
        return {key: plain_argument(item) for key, item in value.items()}
    return value


def describe(net) -> dict:
    """``net`` as plain data: {"nodes", "layers", "state"} (a copy of its state_dict), or {"error"} when torch.fx
    cannot trace it. Tracing runs nothing of ``net`` on tensors, draws no random number and leaves its mode."""
    import torch.fx
    from torch.fx.node import _get_qualified_name

    def name(target):
        try:
            return target if isinstance(target, str) else _get_qualified_name(target)
        except Exception:  # noqa: BLE001 - a function without a qualified name: refused by name on the trusted side
            return repr(target)

    try:
        graph = torch.fx.symbolic_trace(net).graph
    except Exception as error:  # noqa: BLE001 - reported to the student as it is
        return {"error": f"{type(error).__name__}: {error}"[:1500]}
    return {"nodes": [(node.op, node.name, name(node.target), plain_argument(node.args), plain_argument(node.kwargs))
                      for node in graph.nodes],
            "layers": {node.target: spec(net.get_submodule(node.target))  # noqa: F821 - sent with it
                       for node in graph.nodes if node.op == "call_module"},
            "state": {key: value.detach().clone() for key, value in net.state_dict().items()}}


SANDBOX = "\n".join(["import inspect", *(inspect.getsource(f) for f in (layers.spec, plain_argument, describe))])


# --- on the trusted side ------------------------------------------------------------------------------------

CALL = "DesignNet()"
DESCRIBE = """
import torch
torch.manual_seed({seed})
net = DesignNet()
net.eval()
with torch.no_grad():
    logits = net(X)
result = (describe(net), logits)
"""
described: dict[tuple[int, int], tuple] = {}  # one description per submission (and seed)


def untrained(submission, seed: int = 0) -> tuple[dict, object, torch.Tensor]:
    """(description of DesignNet() built after torch.manual_seed(seed), its logits in eval mode for X, X): the
    net whose budgets are measured, and which the training must start from. Asked once per submission."""
    if (id(submission), seed) not in described:
        X = torch.rand(4, *IMAGE)
        described[id(submission), seed] = (*submission.run(SANDBOX + DESCRIBE.format(seed=seed), X=X,
                                                           what=f"{CALL} on a batch of shape (4, 1, 28, 28)"), X)
    return described[id(submission), seed]


class Rebuilt(nn.Module):
    """The net a description describes: its layers, and a forward that walks its graph's nodes.

    Everything it computes with is counted here, whatever the sandbox says: its layers' parameters and every
    tensor its forward reads directly (buffers used as weights included); its multiply-adds are each Conv2d's and
    Linear's products and every elementwise product of tensors, counted on the meta device at the batch size it
    will run at, so that a cost that grows with the batch shows."""

    def __init__(self, description: dict) -> None:
        super().__init__()
        if isinstance(description, dict) and "error" in description:
            raise NotRebuildable(f"torch.fx could not trace it ({description['error']}); its forward must not "
                                 "branch on tensor values")
        nodes, specs, state = (description.get(key) if isinstance(description, dict) else None
                               for key in ("nodes", "layers", "state"))
        if not (isinstance(nodes, list) and 0 < len(nodes) <= MAX_NODES and isinstance(specs, dict)
                and isinstance(state, dict) and all(well_formed(node) for node in nodes)
                and all(isinstance(spec, dict) for spec in specs.values())):
            raise NotRebuildable(f"its description is not a traced graph of 1 to {MAX_NODES} nodes with plain "
                                 f"arguments (integers up to {MAX_INT:,}, no tensors)")
        self.nodes, self.specs = [tuple(node) for node in nodes], specs
        self.state = {key: value for key, value in state.items() if isinstance(value, torch.Tensor)}
        self.keys = {target: f"layer{i}" for i, target in enumerate(specs)}
        try:
            self.layers = nn.ModuleDict({self.keys[t]: layers.build(s, device="meta") for t, s in specs.items()})
        except ValueError as error:
            raise NotRebuildable(str(error)) from None
        refused = [problem for node in self.nodes if (problem := self.refused(node))]
        if refused:
            raise NotRebuildable("its forward uses " + "; ".join(dict.fromkeys(refused)) + ", which the grader "
                                 "does not rebuild: use torch.nn layers (nn.Conv2d, nn.ReLU, ...) and the functions "
                                 "the assignment lists (F.relu, F.max_pool2d, torch.flatten, x.view, ...)")
        self.tensors = {node[2]: self.state[node[2]].to("meta") for node in self.nodes if node[0] == "get_attr"}
        self.attributes = {node[1] for node in self.nodes if node[0] == "get_attr"}
        self.last_use = {}  # node name -> index of the last node that reads it: its value is dropped after that
        for index, (_, _, _, args, kwargs) in enumerate(self.nodes):
            for name in mentioned((args, kwargs)):
                self.last_use[name] = index
        self.cost = self.live = 0  # multiply-adds and the most values alive at once, in a pass on the meta device

    def refused(self, node: tuple) -> str:
        op, _, target, args, _ = node
        if op == "call_module" and target not in self.keys:
            return f"the layer {target!r}"
        if op == "call_function" and target not in FUNCTIONS:
            return f"the function {target}"
        if op == "call_function" and target == "getattr" and (len(args) != 2 or not isinstance(args[1], str)
                                                            or args[1] not in ATTRIBUTES):
            return f"getattr{tuple(args)[1:]}"
        if op == "call_method" and target not in METHODS:
            return f"the tensor method .{target}()"
        if op == "get_attr" and target not in self.state:
            return f"the attribute {target!r} (not a parameter or buffer)"
        if op not in ("placeholder", "get_attr", "call_module", "call_function", "call_method", "output"):
            return f"the operation {op!r}"
        return ""

    def forward(self, x):
        values = {}
        for index, (op, name, target, args, kwargs) in enumerate(self.nodes):
            args, kwargs = value_of(args, values), value_of(kwargs, values)
            if op == "placeholder":
                value = x if not values else (args[0] if args else None)  # later inputs: their defaults
            elif op == "get_attr":
                value = self.tensors[target]
            elif op == "call_module":
                value = self.layers[self.keys[target]](*args, **kwargs)
            elif op == "call_function":
                if target in ARITHMETIC and not all(isinstance(a, (torch.Tensor, int, float)) for a in args):
                    raise NotRebuildable(f"{target} is applied to {[type(a).__name__ for a in args]}, not numbers")
                value = FUNCTIONS[target](*args, **kwargs)
            elif op == "call_method":
                if not (args and isinstance(args[0], torch.Tensor)):
                    raise NotRebuildable(f".{target}() is called on something other than a tensor")
                value = getattr(args[0], target)(*args[1:], **kwargs)
            else:
                return args[0]
            if isinstance(value, int) and abs(value) > MAX_INT:
                raise NotRebuildable(f"its traced arithmetic reaches {target} = an integer of {value.bit_length()} "
                                     f"bits; the grader evaluates integers up to {MAX_INT:,}")
            values[name] = value
            if isinstance(value, torch.Tensor) and value.is_meta:  # the cost pass
                self.count(op, target, args, value)
                computed = [v for n, v in values.items() if isinstance(v, torch.Tensor) and self.nodes[0][1] != n
                            and n not in self.attributes]
                self.live = max(self.live, sum(v.numel() for v in computed))
            for used in [n for n in values if self.last_use.get(n, -1) <= index]:
                del values[used]
        raise NotRebuildable("its traced graph has no output")

    def count(self, op: str, target: str, args, value: torch.Tensor) -> None:
        """Add the multiply-adds that computed ``value`` (on the meta device) to ``self.cost``."""
        kind = self.specs[target].get("type") if op == "call_module" else None
        if kind == "Conv2d":
            layer = self.layers[self.keys[target]]
            self.cost += value.numel() * layer.weight[0].numel()   # each output: in/groups × kernel products
        elif kind == "Linear":
            self.cost += value.numel() * self.layers[self.keys[target]].in_features
        elif target in PRODUCT_NAMES and op != "call_module" and sum(isinstance(a, torch.Tensor) for a in args) >= 2:
            self.cost += value.numel()                            # an elementwise product of tensors

    def measure(self, batch: int) -> tuple[int, int]:
        """(multiply-adds, values alive at once) per image when run on ``batch`` images, on the meta device."""
        self.cost = self.live = 0
        output = self(torch.zeros(batch, *IMAGE, device="meta"))
        if not isinstance(output, torch.Tensor) or tuple(output.shape) != (batch, 10):
            raise NotRebuildable(f"on a ({batch}, 1, 28, 28) batch it returns {describe_value(output)}, not "
                                 f"({batch}, 10) logits")
        return -(-self.cost // batch), -(-self.live // batch)

    def load(self) -> None:
        """Replace the meta layers' parameters and buffers by the submission's tensors."""
        for target, key in self.keys.items():
            own = {name.removeprefix(target + "."): tensor for name, tensor in self.state.items()
                   if name.startswith(target + ".")}
            try:
                self.layers[key].load_state_dict(own, strict=True, assign=True)
            except RuntimeError as error:
                raise NotRebuildable(f"the tensors of its layer {target!r} do not fit it: {error}") from None
        self.tensors = {target: self.state[target] for target in self.tensors}

    def weights(self) -> dict[str, torch.Tensor]:
        """Every tensor it computes with as a weight, by its name in the state_dict: its layers' parameters and
        each tensor its forward reads directly (a buffer or a parameter). Layers' own buffers (BatchNorm's
        running statistics, two numbers per channel) are not weights, as in the notebook's count_parameters."""
        found = {f"{target}.{name}": parameter for target, key in self.keys.items()
                 for name, parameter in self.layers[key].named_parameters()}
        return found | self.tensors

    def cancelled_biases(self) -> set[str]:
        """The biases of the Conv2d and Linear layers whose every output goes into BatchNorms only (in training,
        a BatchNorm subtracts the batch's mean, and the bias with it)."""
        kinds = {name: self.specs[target].get("type") if op == "call_module" else None
                 for op, name, target, _, _ in self.nodes}
        readers: dict[str, set] = {}
        for _, name, _, args, kwargs in self.nodes:
            for read in mentioned((args, kwargs)):
                readers.setdefault(read, set()).add(kinds[name])
        calls = [(target, bool(readers.get(name)) and readers[name] <= {"BatchNorm1d", "BatchNorm2d"})
                 for _, name, target, _, _ in self.nodes if kinds[name] in ("Conv2d", "Linear")]
        return {f"{target}.bias" for target, _ in calls} - {f"{target}.bias" for target, ok in calls if not ok}

    def parameter_count(self) -> int:
        return sum(tensor.numel() for tensor in self.weights().values())

    def convolutions(self) -> int:
        return sum(spec.get("type") == "Conv2d" for spec in self.specs.values())

    def activations_after_convolution(self) -> list[tuple[str, bool]]:
        """(how each activation that takes, through any other operations, a Conv2d's output is called, whether it
        is non-linear with the arguments given), in the order of the graph."""
        after: set[str] = set()
        found = []
        for op, name, target, args, kwargs in self.nodes:
            kind = self.specs[target].get("type") if op == "call_module" else None
            if kind == "Conv2d" or mentions((args, kwargs), after):
                after.add(name)
                if kind in layers.ACTIVATIONS or (op == "call_function" and target in ACTIVATION_NAMES) or (
                        op == "call_method" and target in ACTIVATION_METHODS):
                    found.append((layers.show(self.specs[target]) if kind else shown_call(op, target, args, kwargs),
                                  self.nonlinear(op, target, args, kwargs)))
        return found

    def nonlinear(self, op: str, target: str, args, kwargs) -> bool:
        """Whether the activation, with the arguments given, is not affine on :data:`PROBE` (its other
        arguments must be numbers: an activation of two tensors is not one)."""
        if mentions((args[1:], kwargs), {node[1] for node in self.nodes}):
            return False
        try:
            if op == "call_module":
                layer = self.layers[self.keys[target]]
                probe = PROBE.repeat(1, layer.weight.numel() if isinstance(layer, nn.PReLU) else 1, 1)  # a copy
                with torch.no_grad():
                    output = layer(probe)
            else:
                function = FUNCTIONS[target] if op == "call_function" else getattr(torch.Tensor, target)
                probe = PROBE.clone()[None, None]  # a copy: an activation may work in place
                output = function(probe, *args[1:], **kwargs)
        except Exception:  # noqa: BLE001 - arguments it cannot take: no activation
            return False
        x, y = PROBE.double().repeat(probe.shape[1]), output.flatten().double()
        fit = torch.linalg.lstsq(torch.stack([x, torch.ones_like(x)], 1), y[:, None]).solution[:, 0]
        return (y - fit[0] * x - fit[1]).abs().max().item() > 1e-3 * (1 + y.abs().max().item())


def shown_call(op: str, target: str, args, kwargs) -> str:
    """``torch.nn.functional.leaky_relu(..., negative_slope=1.0)``: a traced call, its first argument elided."""
    shown = ["..." if op == "call_function" else "", *map(repr, args[1:]), *(f"{k}={v!r}" for k, v in kwargs.items())]
    return f"{target}({', '.join(shown)})" if op == "call_function" else f"x.{target}({', '.join(shown[1:])})"


def bounded(argument, depth: int = 0) -> bool:
    """Plain data of at most :data:`MAX_DEPTH` levels, with integers up to :data:`MAX_INT` and no tensor."""
    if depth > MAX_DEPTH or isinstance(argument, torch.Tensor):
        return False
    if isinstance(argument, int):
        return abs(argument) <= MAX_INT
    if isinstance(argument, dict):
        return all(bounded(item, depth + 1) for item in argument.values())
    if isinstance(argument, (tuple, list)):
        return all(bounded(item, depth + 1) for item in argument)
    return True


def well_formed(node) -> bool:
    """(op, name, target, args, kwargs) as :func:`describe` sends it."""
    return (isinstance(node, (tuple, list)) and len(node) == 5 and all(isinstance(part, str) for part in node[:3])
            and isinstance(node[3], (tuple, list)) and isinstance(node[4], dict) and bounded(node[3:]))


def value_of(argument, values: dict):
    if isinstance(argument, dict) and "__node__" in argument:
        return values[argument["__node__"]]
    if isinstance(argument, dict) and "__slice__" in argument:
        return slice(*(value_of(part, values) for part in argument["__slice__"]))
    if isinstance(argument, (tuple, list)):
        return type(argument)(value_of(item, values) for item in argument)
    if isinstance(argument, dict):
        return {key: value_of(item, values) for key, item in argument.items()}
    return argument


def mentioned(argument) -> set[str]:
    """The names of the nodes an argument reads."""
    if isinstance(argument, dict) and "__node__" in argument:
        return {argument["__node__"]}
    items = argument.values() if isinstance(argument, dict) else argument if isinstance(argument, (tuple, list)) else ()
    return set().union(*(mentioned(item) for item in items))


def mentions(argument, names: set[str]) -> bool:
    return bool(mentioned(argument) & names)


def describe_value(value) -> str:
    return f"a tensor of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__


def rebuild(description: dict) -> Rebuilt:
    """The submission's net with its tensors, in eval mode, its cost per image measured (``.cost``) on the meta
    device before a tensor is loaded, on one image and on :data:`BATCH` images: a net that costs more per image
    on a batch, or more than the trusted side evaluates, is refused. Raises :class:`NotRebuildable` saying why."""
    net = Rebuilt(description).eval()  # as it is graded: a BatchNorm1d in training refuses one image
    try:
        cost, live = net.measure(1)
        batch_cost, batch_live = net.measure(BATCH)
    except NotRebuildable:
        raise
    except Exception as error:  # noqa: BLE001 - shapes that do not fit, and the like
        raise NotRebuildable(f"running its layers on a (1, 1, 28, 28) batch raised {type(error).__name__}: "
                             f"{error}") from None
    if max(live, batch_live) > MAX_VALUES:
        raise NotRebuildable(f"its intermediate results hold {max(live, batch_live):,} values per image at once on "
                             f"a batch of {BATCH if batch_live > live else 1}; the grader evaluates nets up to "
                             f"{MAX_VALUES:,}")
    if max(cost, batch_cost) > MAX_COST or batch_cost > cost:
        raise NotRebuildable(f"it does {batch_cost:,} multiply-adds per image on a batch of {BATCH} ({cost:,} on "
                             f"one image); the grader evaluates nets up to {MAX_COST:,}, the same on any batch")
    net.load()
    net.cost = cost
    return net


def same_state(a, b) -> bool:
    """Two state_dicts as sent: the same names, each with the same tensor."""
    return (isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys()
            and all(isinstance(a[k], torch.Tensor) and isinstance(b[k], torch.Tensor) and a[k].shape == b[k].shape
                    and a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a))


def unchanged(net: Rebuilt, initial: dict) -> list[str]:
    """The names of the weights training left as they were in ``initial`` (the untrained net's state), when they
    hold more than :data:`LEARNED` values in all: fitted elsewhere and frozen, they would score what the training
    did not learn, whether in one tensor or in many small ones. A bias whose layer feeds only BatchNorms is left
    out: the batch's mean cancels it, so its gradient is zero."""
    frozen = {name: tensor for name, tensor in net.weights().items() if name not in net.cancelled_biases()
              and isinstance(initial.get(name), torch.Tensor) and initial[name].shape == tensor.shape
              and torch.equal(initial[name], tensor)}
    return list(frozen) if sum(tensor.numel() for tensor in frozen.values()) > LEARNED else []


def same_outputs(net: Rebuilt, X: torch.Tensor, logits, what: str) -> None:
    """The rebuilt net computes ``logits`` (what the submission's module computed) for ``X``, or
    :class:`NotRebuildable` says that what torch.fx traced is not what the module computes."""
    with torch.no_grad():
        expected = net(X)
    if not (isinstance(logits, torch.Tensor) and logits.shape == expected.shape and logits.dtype == expected.dtype
            and torch.allclose(logits, expected, atol=1e-5, rtol=1e-4)):
        raise NotRebuildable(f"what torch.fx traced is not what it computes: {what} in eval mode returned "
                             f"{describe_value(logits) if not isinstance(logits, torch.Tensor) else logits[:2]}, "
                             f"its traced graph computes {expected[:2]} (first two rows); its forward must do the "
                             "same on every call, with nothing torch.fx does not record")


# The notebook's data cell and comparison cell, for DesignNet: every DataLoader iterator draws from torch's global
# generator, so evaluating after each epoch, as the notebook does, is part of the data order. An evaluate that
# raises stops the notebook; here it is noted and training goes on.
COMPARISON = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
train_loader = DataLoader(TensorDataset(images / 255, labels), batch_size=64, shuffle=True)
test_loader = DataLoader(TensorDataset(notebook_images / 255, notebook_labels), batch_size=500, shuffle=False)
device, criterion, lr, num_epochs = "cpu", nn.CrossEntropyLoss(), 0.03, {epochs}
torch.manual_seed({seed})
net = DesignNet().to(device)
initial = {{key: value.detach().clone() for key, value in net.state_dict().items()}}
optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
evaluate_error = ""
for epoch in range(num_epochs):
    train_one_epoch(net, train_loader, optimizer, criterion, device)
    try:
        evaluate(net, test_loader, criterion, device)
    except Exception as error:
        evaluate_error = evaluate_error or f"{{type(error).__name__}}: {{error}}"[:300]
net.eval()
with torch.no_grad():
    logits = net(X)
result = (initial, describe(net), logits, evaluate_error)
"""


def trained(submission, mnist, seed: int = 0, epochs: int = EPOCHS) -> Rebuilt:
    """DesignNet() trained as the notebook's comparison cell trains it (:data:`COMPARISON`), rebuilt here; raises
    :class:`NotRebuildable` when it is not the net whose budgets were measured, or its weights did not train. A net
    that cannot be rebuilt, or whose trace is not what it computes, is refused before any training (it would be
    after it: the graph is the same)."""
    counted, untrained_logits, X = untrained(submission, seed)
    same_outputs(rebuild(counted), X, untrained_logits, f"{CALL}(X) before training, for X of shape (4, 1, 28, 28)")
    initial, final, logits, evaluate_error = submission.run(
        SANDBOX + COMPARISON.format(seed=seed, epochs=epochs), images=mnist.images, labels=mnist.labels,
        notebook_images=mnist.notebook_images, notebook_labels=mnist.notebook_labels, X=X, timeout=120,
        what=f"the notebook's comparison cell: DesignNet() trained for {epochs} epochs")
    net = rebuild(final)
    same_net = all(final.get(key) == counted.get(key) for key in ("nodes", "layers"))  # both traced in eval mode
    if not same_net or not same_state(initial, counted.get("state")):
        raise NotRebuildable(f"the net trained is not the {CALL} built after torch.manual_seed({seed}) "
                             "whose budgets were measured: DesignNet() must build the same net every time")
    same_outputs(net, X, logits, f"the trained {CALL}(X)")
    if frozen := unchanged(net, initial):
        values = sum(net.weights()[name].numel() for name in frozen)
        shown = ", ".join(frozen[:6]) + (f" and {len(frozen) - 6} more" if len(frozen) > 6 else "")
        raise NotRebuildable(f"training changed none of the {values:,} values of {shown}: every weight it computes "
                             f"with must be learned by the grader's training ({LEARNED} values in all may stay as "
                             "they were, a fixed filter say)")
    net.evaluate_error = evaluate_error
    return net


def calibrate(net: Rebuilt, images: torch.Tensor) -> int:
    """Measure each BatchNorm's running statistics of the trained ``net`` anew, in place, for its final weights:
    their mean over ``images`` (uint8, the training images) in batches of :data:`BATCH`, in order: the averages
    training leaves lag behind the weights (the module's docstring has the figures). Returns how many BatchNorms it
    measured (0: ``net`` is unchanged)."""
    norms = [layer for layer in net.layers.values()
             if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.track_running_stats]
    for layer in norms:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative mean over the batches
        layer.train()
    with torch.no_grad():
        for start in range(0, len(images) if norms else 0, BATCH):
            net(images[start:start + BATCH].float() / 255)
    for layer in norms:
        layer.eval()
    return len(norms)


def accuracy(model, images: torch.Tensor, labels: torch.Tensor) -> float:
    """The accuracy on ``images`` (uint8), in batches of BATCH (the trusted side's memory stays small)."""
    batches = [(images[i:i + BATCH].float() / 255, labels[i:i + BATCH]) for i in range(0, len(labels), BATCH)]
    return reference.evaluate(model, batches, nn.CrossEntropyLoss())[1]
