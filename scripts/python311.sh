#!/usr/bin/env bash
# Print the Python 3.11 to build venvs with: $PYTHON if set, else python3.11 or python3.
set -euo pipefail
for candidate in ${PYTHON:-} python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1 \
    && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "$candidate"; exit 0
  fi
done
echo "Python 3.11 is required (set PYTHON=...)" >&2
exit 1
