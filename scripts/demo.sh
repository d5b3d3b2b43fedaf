#!/usr/bin/env bash
# Install mmprep (CPU torch first, so no CUDA build is pulled), make the demo corpus, build it.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python -m pip install --quiet --disable-pip-version-check -e .
python examples/make_corpus.py
mmprep build pipelines/demo.yaml --input examples/corpus --output out/demo "$@"
echo "--- out/demo/stats.json (excerpt) and errors.jsonl"
python - <<'PY'
import json
stats = json.load(open("out/demo/stats.json"))
print({k: stats[k] for k in ("samples_in", "samples_out", "samples_dropped", "fields_omitted", "errors_by_reason")})
PY
cat out/demo/errors.jsonl
