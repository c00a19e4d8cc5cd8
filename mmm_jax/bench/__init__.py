"""The sampler benchmark suite (``mmm-jax bench``) and the pieces the benchmarks share.

Modules (none is imported here: ``import mmm_jax.bench`` loads nothing more):

* :mod:`.suite`: the suite itself, every sampler x a grid of problem sizes plus speed options,
  its command-line options and its main; :mod:`.suite_report` turns its runs into ratios, a
  Markdown table and a plot.
* :mod:`.worker`: one run of ours, PyMC's or nutpie in a fresh process
  (``python -m mmm_jax.bench.worker``); :mod:`.pmm_worker`: one PyMC-Marketing run, a file run
  by path under PyMC-Marketing's interpreter (which has no mmm_jax); :mod:`.compile_monitor`:
  JAX's compile events during a run.
* :mod:`.common`: the workers' protocol (spec in, one result line out) and measurements; it
  imports nothing from mmm_jax, so the workers of other interpreters can load it by path.
* :mod:`.runner`: starts one worker process with a time limit and reads its result.
* :mod:`.pmm`: finds, checks or creates the PyMC-Marketing interpreter.
* :mod:`.data`: the simulated data set of a run, written for the workers.
* :mod:`.report`: what a report records besides its runs (machine, device, git commit), made
  JSON-safe and free of machine paths.
* :mod:`.paths`: where results and the PyMC-Marketing environment go: ``benchmarks/`` of a
  source checkout, else ``./mmm_jax_bench/``.

The benchmark scripts of a source checkout (``benchmarks/*.py``) use these modules too.
"""
