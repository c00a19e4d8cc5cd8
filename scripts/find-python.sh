#!/bin/sh
# Prints the command of the Python interpreter to install mmm_jax with: the fast line (Python 3.12
# or 3.13: jax 0.12, PyMC 6, ArviZ 1) where this machine has one, else `python3` (Python 3.11:
# jax 0.10, PyMC 5.28, ArviZ 0.23).
#   sh scripts/find-python.sh          -> the first of python3.12, python3.13 that runs, else python3
#   sh scripts/find-python.sh --fast   -> a Python >= 3.12 only; exit 1 (and a message) where none
# Looks on PATH (pyenv shims that are not activated do not count), then in pyenv's, uv's and
# the usual system folders.
fast_only=0
[ "${1:-}" = "--fast" ] && fast_only=1

runs() {  # the interpreter runs, and is Python >= 3.12
    "$1" -c 'import sys, venv; sys.exit(sys.version_info[:2] < (3, 12))' >/dev/null 2>&1
}

for v in 3.12 3.13; do
    for cand in "python$v" \
        "$(pyenv root 2>/dev/null)"/versions/$v*/bin/python$v \
        "$HOME"/.local/share/uv/python/cpython-$v*/bin/python$v \
        /usr/local/bin/python$v /usr/bin/python$v /opt/homebrew/bin/python$v; do
        if runs "$cand"; then
            echo "$cand"
            exit 0
        fi
    done
done
if runs python3; then
    echo python3
    exit 0
fi
if [ "$fast_only" = 1 ]; then
    echo "find-python: no Python >= 3.12 on this machine (looked on PATH, in pyenv, uv and /usr)" >&2
    exit 1
fi
echo python3
