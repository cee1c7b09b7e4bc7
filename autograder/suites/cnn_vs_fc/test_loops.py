"""Hidden tests of train_one_epoch and evaluate on tiny problems the grader recomputes itself.

The grader builds a small model, sends its initial weights and the data, lets the submission's
function run in the sandbox, and compares the returned number and the resulting weights with
what its own loop computes from the same start.
"""
import pytest
import torch
from torch import nn

import reference
from autograder.expect import expect_close, expect_equal, expect_tensor

MODELS = {
    "linear": "nn.Linear(4, 3)",
    "batchnorm": "nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))",
}

RUN = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
model = {model}
model.load_state_dict(state)
model.{mode}()
loader = DataLoader(TensorDataset(X, y), batch_size=4, shuffle=False)
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
criterion = nn.CrossEntropyLoss()
value = {call}
result = (value, {{k: v for k, v in model.state_dict().items()}})
"""
TRAIN = "train_one_epoch(model, loader, optimizer, criterion)"
EVALUATE = "evaluate(model, loader, criterion)"


def problem(model: str, seed: int = 0):
    """A model (and its initial state) and 10 samples: batches of 4, 4 and 2, so batch means ≠ sample means."""
    torch.manual_seed(seed)
    net = eval(MODELS[model], {"nn": nn})
    X, y = torch.randn(10, 4) * 3, torch.randint(0, 3, (10,))
    return net, {k: v.clone() for k, v in net.state_dict().items()}, X, y


def in_sandbox(submission, model: str, mode: str, call: str):
    net, state, X, y = problem(model)
    value, after = submission.run(RUN.format(model=MODELS[model], mode=mode, call=call), state=state, X=X, y=y,
                                  what=call)
    return net, state, X, y, value, after


def batches(X, y):
    return [(X[i:i + 4], y[i:i + 4]) for i in range(0, len(y), 4)]


def trained(net, mode, X, y):
    getattr(net, mode)()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    loss = reference.train_one_epoch(net, batches(X, y), optimizer, nn.CrossEntropyLoss())
    return loss, net.state_dict()


def expect_state(got: dict, expected: dict, call: str) -> None:
    expect_equal(sorted(got) if isinstance(got, dict) else got, sorted(expected), f"state_dict keys after {call}")
    for name, tensor in expected.items():
        expect_tensor(got[name], tensor, f"{name} after {call}", atol=1e-5)


CALL = "train_one_epoch(model, loader, SGD(lr=0.5), CrossEntropyLoss()) on 10 samples in batches of 4, 4, 2"


@pytest.mark.points(2)
def test_train_zeroes_gradients(submission):
    """train_one_epoch: one SGD step per batch with fresh gradients (zero_grad at every step)"""
    net, _, X, y, _, after = in_sandbox(submission, "linear", "train", TRAIN)
    expect_state(after, trained(net, "train", X, y)[1], CALL + "; stale gradients would change the weights")


@pytest.mark.points(2)
def test_train_mean_loss_per_sample(submission):
    """train_one_epoch: returns the mean loss per sample over the epoch"""
    net, _, X, y, value, _ = in_sandbox(submission, "linear", "train", TRAIN)
    expect_close(value, trained(net, "train", X, y)[0], CALL + " (each batch's mean loss weighted by its size)")


def test_train_mode(submission):
    """train_one_epoch: puts the model in train mode (BatchNorm updates its statistics)"""
    net, _, X, y, _, after = in_sandbox(submission, "batchnorm", "eval", TRAIN)
    expect_state(after, trained(net, "train", X, y)[1], CALL.replace("model", "a BatchNorm model left in eval mode"))


def test_evaluate_values(submission):
    """evaluate: returns (mean loss per sample, accuracy in [0, 1])"""
    net, _, X, y, value, _ = in_sandbox(submission, "linear", "eval", EVALUATE)
    loss, accuracy = reference.evaluate(net, batches(X, y), nn.CrossEntropyLoss())
    call = "evaluate(model, loader, CrossEntropyLoss()) on 10 samples in batches of 4, 4, 2"
    assert isinstance(value, (tuple, list)) and len(value) == 2, f"{call} returned {value!r}, expected (loss, accuracy)"
    expect_close(value[0], loss, call + ": the loss")
    expect_close(value[1], accuracy, call + ": the accuracy (a fraction in [0, 1])")


@pytest.mark.points(2)
def test_evaluate_leaves_model_untouched(submission):
    """evaluate: uses eval mode and leaves every parameter and buffer untouched"""
    net, state, X, y, value, after = in_sandbox(submission, "batchnorm", "train", EVALUATE)
    call = "evaluate(model, loader, CrossEntropyLoss()) with a BatchNorm model left in train mode"
    expect_state(after, state, call)
    expect_close(value[0] if isinstance(value, (tuple, list)) else value,
                 reference.evaluate(net, batches(X, y), nn.CrossEntropyLoss())[0], call + ": the loss in eval mode")


NO_GRAD = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
class Probe(nn.Linear):
    grad_enabled = []
    def forward(self, x):
        Probe.grad_enabled.append(torch.is_grad_enabled())
        return super().forward(x)
model = Probe(4, 3)
evaluate(model, DataLoader(TensorDataset(X, y), batch_size=4), nn.CrossEntropyLoss())
result = (Probe.grad_enabled, [p.grad is None for p in model.parameters()])
"""


def test_evaluate_no_grad(submission):
    """evaluate: runs the model under torch.no_grad()"""
    _, _, X, y = problem("linear")
    enabled, no_grads = submission.run(NO_GRAD, X=X, y=y, what="evaluate(model, loader, criterion)")
    assert enabled and not any(enabled), (
        f"evaluate(model, loader, criterion): the model's forward ran with gradients enabled in "
        f"{sum(map(bool, enabled))} of {len(enabled)} batches; wrap the loop in torch.no_grad()")
    assert all(no_grads), "evaluate(model, loader, criterion) computed gradients (a parameter's .grad was set)"


CUDA = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
model = nn.Linear(4, 3)
model.load_state_dict(state)
model.to("cuda")
loader = DataLoader(TensorDataset(X, y), batch_size=4)
criterion = nn.CrossEntropyLoss()
loss = train_one_epoch(model, loader, torch.optim.SGD(model.parameters(), lr=0.5), criterion, device="cuda")
evaluated = evaluate(model, loader, criterion, device="cuda")
result = (loss, evaluated, str(next(model.parameters()).device), {k: v for k, v in model.state_dict().items()})
"""


@pytest.mark.cuda
@pytest.mark.points(2)
def test_loops_on_cuda(submission):
    """train_one_epoch: trains and evaluate evaluates on CUDA with device="cuda" (CPU batches moved to the GPU)"""
    net, state, X, y = problem("linear")
    loss, evaluated, device, after = submission.run(CUDA, state=state, X=X, y=y, what="the loops with device='cuda'")
    expected_loss, expected_state = trained(net, "train", X, y)
    assert device.startswith("cuda"), f"the model ended on {device}"
    expect_close(loss, expected_loss, "train_one_epoch(..., device='cuda')", tol=1e-3)
    expect_state(after, expected_state, "train_one_epoch(..., device='cuda')")
    expect_close(evaluated[1], reference.evaluate(net, batches(X, y), nn.CrossEntropyLoss())[1],
                 "evaluate(..., device='cuda'): the accuracy", tol=1e-6)
