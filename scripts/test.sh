#!/usr/bin/env bash
# Install mmprep with its test extras (CPU torch first, so no CUDA build is pulled) and run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python -m pip install --quiet --disable-pip-version-check -e ".[test]"
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  # headless Chromium renders the alignment report in one test; the rest never needs it
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "chromium could not be installed; the report rendering test will skip"
fi
python -m ruff check .
python -m pytest -q -p no:cacheprovider "$@"
