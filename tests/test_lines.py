"""The two supported lines (Python 3.11: PyMC 5 / PyTensor 2 / ArviZ 0.x; Python >= 3.12: PyMC 6 /
PyTensor 3 / ArviZ 1): the CI runs the README's command on both, the installed versions are the
ones pyproject names for this interpreter, and our Ops raise no deprecation warnings."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from mmm_jax import compat

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    cmd = next(b for b in blocks if "pytest" in b)
    run = (ROOT / ".ci" / "run").read_text()
    # the README's command after the venv step is what each CI leg runs, verbatim
    tail = cmd.split(". .venv/bin/activate && ", 1)[1]
    assert tail in run
    assert "find-python.sh --fast" in run and 'find-python.sh)" -m venv' in cmd


def test_find_python_prints_a_supported_interpreter():
    out = subprocess.run(["sh", str(ROOT / "scripts" / "find-python.sh")], capture_output=True, text=True, check=True)
    py = out.stdout.strip()
    ver = subprocess.run([py, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True,
                         check=True).stdout.split()
    assert tuple(map(int, ver)) >= (3, 11)
    fast = subprocess.run(["sh", str(ROOT / "scripts" / "find-python.sh"), "--fast"], capture_output=True, text=True)
    if fast.returncode == 0:
        ver = subprocess.run([fast.stdout.strip(), "-c", "import sys; print(*sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.split()
        assert tuple(map(int, ver)) >= (3, 12)
        assert py == fast.stdout.strip()  # the fast line is what a new user gets where there is one
    else:
        assert fast.returncode == 1 and "no Python >= 3.12" in fast.stderr


def _major(pkg: str) -> int:
    return int(version(pkg).split(".")[0])


def test_installed_line_matches_the_interpreter():
    fast = sys.version_info >= (3, 12)
    assert (_major("pymc") >= 6) == fast
    assert (_major("pytensor") >= 3) == fast
    assert (_major("arviz") >= 1) == fast
    assert compat.ARVIZ_1 == fast and compat.PYTENSOR_3 == fast


def test_pytensor_op_adapts_an_op_to_the_line_without_warnings():
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    with warnings.catch_warnings():
        warnings.simplefilter("error")

        @compat.pytensor_op
        class Double(Op):
            __props__ = ()

            def make_node(self, x):
                x = pt.as_tensor_variable(x)
                return Apply(self, [x], [x.type()])

            def perform(self, node, inputs, output_storage):
                output_storage[0][0] = 2 * inputs[0]

            def infer_shape(self, node, input_shapes):
                return [input_shapes[0]]

            def pullback(self, inputs, outputs, cotangents):
                return [2 * cotangents[0]]

        x = pt.vector("x")
        y = Double()(x)
        f = pytensor.function([x], [y, pt.grad((y * x).sum(), x), y.shape], mode="FAST_COMPILE")
        val, grad, shape = f(np.array([1.0, 3.0]))
    np.testing.assert_allclose(val, [2.0, 6.0])
    np.testing.assert_allclose(grad, [4.0, 12.0])  # d/dx (2x . x) = 4x
    assert tuple(shape) == (2,)


@pytest.mark.parametrize("name", ["AdstockConv", "GeometricRecursion"])
def test_adstock_ops_follow_the_line(name):
    from mmm_jax.media import adstock

    cls = getattr(adstock, name)
    if compat.PYTENSOR_3:
        assert "pullback" in cls.__dict__ and "L_op" not in cls.__dict__
    else:
        assert cls.__dict__["L_op"] is cls.__dict__["pullback"]
