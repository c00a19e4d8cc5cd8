"""Test setup: CPU, float64, fixed seeds, and small shared fixtures."""

import os
import warnings

os.environ.setdefault("JAX_PLATFORMS", "cpu")
warnings.filterwarnings("ignore", message=".*BLAS.*")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import mmm_jax  # noqa: E402,F401  (applies float64 and host-device settings before JAX starts)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """After each test module, drop JAX's in-process caches of traced and compiled programs.

    Every fitted model leaves its traced programs in JAX's caches (about 45 MB per fit); over the
    whole suite a pytest-xdist worker grew to about 7.5 GB. Later modules recompile what they
    need (from the persistent compilation cache where it is on).
    """
    yield
    import gc

    import jax

    jax.clear_caches()
    gc.collect()


@pytest.fixture
def rng():
    return np.random.default_rng(20261124)


@pytest.fixture(scope="session")
def example():
    from mmm_jax.datasets import load_example

    return load_example()


def random_arrays(rng, T=60, C=3, K=2, n_fourier=2):
    """Scaled model inputs with the shapes of :func:`mmm_jax.data.features.design_arrays`."""
    return {
        "spend": rng.gamma(2.0, 0.3, size=(T, C)) * (rng.random((T, C)) > 0.2),
        "controls": rng.normal(size=(T, K)),
        "fourier": rng.normal(size=(T, 2 * n_fourier)),
        "time": np.linspace(0.0, 1.0, T),
        "target": rng.normal(0.6, 0.2, size=T),
        "mask": np.ones(T),
    }
