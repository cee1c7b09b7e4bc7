"""Hidden tests of train_one_epoch and evaluate on tiny problems the grader recomputes itself.

The grader builds a small model, sends its initial weights and the data, lets the submission's
function run in the sandbox, and compares the returned number and the resulting weights with
what its own loop computes from the same start. Each test isolates one behaviour: the loss is
checked with a learning rate of 0 (so gradient handling cannot change it), the modes with a probe
module that records them, the CUDA runs against the submission's own CPU results.
"""
import pytest
import torch
from torch import nn

import reference
from autograder.expect import expect_close, expect_equal, expect_tensor, fail, number

pytestmark = pytest.mark.book("07_convnet_vs_fc", "A training loop, done right")
RUN = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
model = nn.Linear(4, 3)
model.load_state_dict(state)
model.{mode}()
loader = DataLoader(TensorDataset(X, y), batch_size=4, shuffle=False)
optimizer = torch.optim.SGD(model.parameters(), lr={lr})
criterion = nn.CrossEntropyLoss()
value = {call}
result = (value, {{k: v for k, v in model.state_dict().items()}})
"""
TRAIN = "train_one_epoch(model, loader, optimizer, criterion)"
EVALUATE = "evaluate(model, loader, criterion)"


def problem(seed: int = 0):
    """A linear model (and its initial state) and 10 samples: batches of 4, 4 and 2, so batch means ≠ sample means."""
    torch.manual_seed(seed)
    net = nn.Linear(4, 3)
    X, y = torch.randn(10, 4) * 3, torch.randint(0, 3, (10,))
    return net, {k: v.clone() for k, v in net.state_dict().items()}, X, y


def in_sandbox(submission, mode: str, call: str, lr: float = 0.5):
    net, state, X, y = problem()
    value, after = submission.run(RUN.format(mode=mode, call=call, lr=lr), state=state, X=X, y=y, what=call)
    return net, state, X, y, value, after


def batches(X, y):
    return [(X[i:i + 4], y[i:i + 4]) for i in range(0, len(y), 4)]


def trained(net, mode, X, y, lr=0.5):
    getattr(net, mode)()
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
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
    net, _, X, y, _, after = in_sandbox(submission, "train", TRAIN)
    expect_state(after, trained(net, "train", X, y)[1], CALL + "; stale gradients would change the weights")


@pytest.mark.points(2)
def test_train_mean_loss_per_sample(submission):
    """train_one_epoch: returns the mean loss per sample over the epoch"""
    net, _, X, y, value, _ = in_sandbox(submission, "train", TRAIN, lr=0.0)
    expect_close(value, trained(net, "train", X, y, lr=0.0)[0], CALL.replace("0.5", "0") +
                 " (each batch's mean loss weighted by its size)")


# A linear layer that records, at each forward pass, (train mode?, gradients enabled?).
PROBE = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
class Probe(nn.Linear):
    calls = []
    def forward(self, x):
        Probe.calls.append((self.training, torch.is_grad_enabled()))
        return super().forward(x)
model = Probe(4, 3)
model.{mode}()
loader = DataLoader(TensorDataset(X, y), batch_size=4)
{call}
result = (Probe.calls, [p.grad is None for p in model.parameters()])
"""


def probed(submission, mode: str, call: str):
    """[(training, grad enabled)] of each forward pass of ``call`` on a Probe left in ``mode``, and no-grad flags."""
    _, _, X, y = problem()
    calls, no_grads = submission.run(PROBE.format(mode=mode, call=call), X=X, y=y, what=call)
    if not calls:
        raise AssertionError(f"{call} never called the model")
    return calls, no_grads


def test_train_mode(submission):
    """train_one_epoch: puts the model in train mode"""
    call = "train_one_epoch(model, loader, torch.optim.SGD(model.parameters(), lr=0.5), nn.CrossEntropyLoss())"
    calls, _ = probed(submission, "eval", call)
    in_eval = sum(not training for training, _ in calls)
    assert not in_eval, (f"{call} with a model left in eval mode: the model ran in eval mode in {in_eval} of "
                         f"{len(calls)} batches; call model.train() first")


EVAL_CALL = "evaluate(model, loader, CrossEntropyLoss()) on 10 samples in batches of 4, 4, 2"


def evaluated(submission):
    """What the submission's evaluate returned, and the reference's (loss, accuracy)."""
    net, _, X, y, value, _ = in_sandbox(submission, "eval", EVALUATE)
    return value, reference.evaluate(net, batches(X, y), nn.CrossEntropyLoss())


def test_evaluate_loss(submission):
    """evaluate: returns the mean loss per sample first"""
    value, (loss, _) = evaluated(submission)
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        fail(EVAL_CALL, (loss, "accuracy"), value, "expected a pair (mean loss per sample, accuracy)")
    expect_close(value[0], loss, EVAL_CALL + ": the loss (each batch's mean loss weighted by its size)")


def test_evaluate_accuracy(submission):
    """evaluate: returns the accuracy, a fraction in [0, 1], second"""
    value, (_, accuracy) = evaluated(submission)
    pair = isinstance(value, (tuple, list)) and len(value) == 2
    expect_close(value[1] if pair else value, accuracy, EVAL_CALL + ": the accuracy (a fraction in [0, 1])" +
                 ("" if pair else "; you returned one value, graded here as the accuracy"))


@pytest.mark.points(2)
def test_evaluate_eval_mode(submission):
    """evaluate: puts the model in eval mode"""
    call = "evaluate(model, loader, nn.CrossEntropyLoss())"
    calls, _ = probed(submission, "train", call)
    training = sum(mode for mode, _ in calls)
    assert not training, (f"{call} with a model left in train mode: the model ran in train mode in {training} "
                          f"of {len(calls)} batches; call model.eval() first")


def test_evaluate_no_grad(submission):
    """evaluate: runs the model under torch.no_grad()"""
    call = "evaluate(model, loader, nn.CrossEntropyLoss())"
    calls, no_grads = probed(submission, "eval", call)
    enabled = sum(grad for _, grad in calls)
    assert not enabled, (f"{call}: the model's forward ran with gradients enabled in {enabled} of {len(calls)} "
                         "batches; wrap the loop in torch.no_grad()")
    assert all(no_grads), f"{call} computed gradients (a parameter's .grad was set)"


# The same start on the CPU and on the GPU: the submission's own CPU results are the reference.
CUDA = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
loader = DataLoader(TensorDataset(X, y), batch_size=4)
criterion = nn.CrossEntropyLoss()
models = dict()
for device in ("cpu", "cuda"):
    models[device] = nn.Linear(4, 3)
    models[device].load_state_dict(state)
    models[device].to(device)
values = dict()
for device, model in models.items():
    values[device] = {call}
result = (values["cpu"], values["cuda"], str(next(models["cuda"].parameters()).device),
          {{k: v.cpu() for k, v in models["cpu"].state_dict().items()}},
          {{k: v.cpu() for k, v in models["cuda"].state_dict().items()}})
"""


def on_cuda(submission, call: str):
    _, state, X, y = problem()
    return submission.run(CUDA.format(call=call), state=state, X=X, y=y, what=f"{call} on the CPU and on CUDA")


def expect_same_numbers(got, expected, call: str) -> None:
    """Every number ``expected`` holds (one, or a pair) is in ``got`` too, within float32's tolerance on a GPU."""
    pairs = zip(got, expected) if isinstance(expected, (tuple, list)) and isinstance(got, (tuple, list)) else [
        (got, expected)]
    for got_item, expected_item in pairs:
        if number(expected_item) is not None:
            expect_close(got_item, number(expected_item), call, tol=1e-3)


@pytest.mark.cuda
def test_train_on_cuda(submission):
    """train_one_epoch: with device="cuda", trains a CUDA model on CPU batches as it does on the CPU"""
    call = 'train_one_epoch(model, loader, torch.optim.SGD(model.parameters(), lr=0.5), criterion, device=device)'
    on_cpu, on_gpu, device, state_cpu, state_gpu = on_cuda(submission, call)
    assert device.startswith("cuda"), f"the model ended on {device}"
    what = 'train_one_epoch(..., device="cuda"), compared with your train_one_epoch on the CPU'
    expect_same_numbers(on_gpu, on_cpu, what + ": the loss")
    for name, tensor in state_cpu.items():
        expect_tensor(state_gpu.get(name), tensor, f"{what}: {name}", atol=1e-4)


@pytest.mark.cuda
def test_evaluate_on_cuda(submission):
    """evaluate: with device="cuda", evaluates a CUDA model on CPU batches as it does on the CPU"""
    on_cpu, on_gpu, _, _, _ = on_cuda(submission, "evaluate(model, loader, criterion, device=device)")
    expect_same_numbers(on_gpu, on_cpu, 'evaluate(..., device="cuda"), compared with your evaluate on the CPU')
