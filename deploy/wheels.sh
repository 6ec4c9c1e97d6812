#!/bin/sh
# Wheels for the image, made on the build host with its own pip (and its package index), so
# that `docker build` itself needs no network: build/requirements.txt and build/wheels/.
set -eu
PY="${PYTHON:-python3}"
mkdir -p build/wheels
"$PY" -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > build/requirements.txt
# redis needs async-timeout below Python 3.11.3 (Debian 12 ships 3.11.2): fetched for any base.
echo 'async-timeout>=4.0.3' >> build/requirements.txt
"$PY" -m pip wheel --quiet --wheel-dir build/wheels -r build/requirements.txt
