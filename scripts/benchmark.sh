#!/usr/bin/env bash
# Times the push engine against a local docker-registry (started by the test
# itself on 127.0.0.1) and prints a Markdown table for docs/benchmarks.md.
# Needs docker-registry and htpasswd (scripts/bootstrap.sh installs them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo test --release --test distribution_benchmark -- --ignored --nocapture --test-threads=1 2>&1 |
  grep -E '^\|'
