"""The net the grader trains for cnn_vs_fc's design part is the net the notebook's comparison cell trains.

The solution notebook's own cells (imports, counting helpers, train_one_epoch, evaluate, the data cell and the
comparison cell) run in this process for several designs; the grader's training (the suite's
``design.trained``, the code it sends to a sandbox) runs with the same train_one_epoch and evaluate. Both must end
with the same weights, bit for bit, and the accuracy the grader reports for the notebook's test set must be the
one the comparison cell prints. ConvNet and FCNet, trained before DesignNet in the cell, are swapped for a small
linear net that is not trained (its initial weights and evaluate still draw random numbers): each net starts from
torch.manual_seed(0), so they cannot change DesignNet's training, and the test would see it if they did.
"""
from __future__ import annotations

import re
from contextlib import redirect_stdout
from io import StringIO

import nbformat
import pytest
import torch

from in_process import ROOT, InProcess, suite_data

import design  # noqa: E402 - in_process puts the suite on the path

pytestmark = pytest.mark.slow
NOTEBOOK = ROOT / "solutions" / "cnn_vs_fc" / "cnn_vs_fc.ipynb"
DESIGNS = {  # styles the spec allows, each with what draws random numbers in training (dropout) or not
    "sequential": """
class DesignNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 5), nn.ReLU(),
                                 nn.MaxPool2d(2), nn.Flatten(), nn.Linear(128, 10))

    def forward(self, x):
        return self.net(x)
""",
    "functional_bn_dropout": """
class DesignNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 6, 3, stride=2), nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 12, 3, stride=2)
        self.fc = nn.Linear(12 * 6 * 6, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.dropout(F.relu(self.conv2(x)), 0.1, self.training)
        return self.fc(x.view(x.size(0), -1))
""",
    "residual_gap": """
class DesignNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Conv2d(8, 8, 3, padding=1) for _ in range(2))
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = F.max_pool2d(torch.relu(self.stem(x)), 4)
        for block in self.blocks:
            x = x + torch.relu(block(x))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))
""",
}


def cells() -> dict[str, str]:
    book = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell.source for cell in book.cells if cell.cell_type == "code"]
    by_id = {cell.metadata.get("nbgrader", {}).get("grade_id"): cell.source for cell in book.cells}
    return {"imports": code[0], "helpers": next(s for s in code if "def count_multiply_adds" in s),
            "loops": by_id["train_one_epoch"] + "\n" + by_id["evaluate"],
            "data": next(s for s in code if 'Path("mnist_sample")' in s),
            "comparison": next(s for s in code if "for make in (ConvNet, FCNet, DesignNet)" in s)}


@pytest.fixture(scope="module")
def notebook_cells():
    return cells()


@pytest.fixture(scope="module")
def data():
    return suite_data()


@pytest.mark.parametrize("name", DESIGNS)
def test_grader_trains_the_notebooks_net(notebook_cells, data, name, monkeypatch):
    torch.set_num_threads(1)
    scope: dict = {}
    monkeypatch.chdir(NOTEBOOK.parent)  # the data cell reads mnist_sample/ beside the notebook
    monkeypatch.delenv("MNIST_FULL", raising=False)
    for key in ("imports", "helpers", "loops"):
        exec(notebook_cells[key], scope)
    exec(DESIGNS[name], scope)
    scope["ConvNet"] = scope["FCNet"] = lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    train = scope["train_one_epoch"]  # the stand-ins draw their initial weights and evaluate, but are not trained
    scope["train_one_epoch"] = lambda net, *args: train(net, *args) if isinstance(net, scope["DesignNet"]) else 0.0
    printed = StringIO()
    with redirect_stdout(printed):
        exec(notebook_cells["data"], scope)
        exec(notebook_cells["comparison"], scope)
    notebook_net = scope["net"]

    submission = InProcess(DesignNet=scope["DesignNet"], train_one_epoch=scope["train_one_epoch"],
                           evaluate=scope["evaluate"])
    graded = design.trained(submission, data)
    expected = notebook_net.state_dict()
    assert all(torch.equal(graded.state[key], value) for key, value in expected.items()), (
        f"{name}: the grader's weights differ from the notebook's")
    shown = re.findall(r"DesignNet: .* test accuracy ([\d.]+)%", printed.getvalue())
    accuracy = design.accuracy(graded, data.notebook_images, data.notebook_labels)
    assert shown == [f"{accuracy:.1%}".removesuffix("%")], (printed.getvalue(), accuracy)
    design.described.clear()  # the next test's submission may get this one's id
