#!/usr/bin/env bash
# Infra checks: checkov on the Bicep in infra/ and on the GitHub Actions workflows, with 0
# failed checks allowed (a check is skipped only inline, with its reason, next to the resource).
# checkov pins many packages, so it lives in its own venv, .venv-tools, from
# requirements-infra.txt (pip only). Set-up is idempotent: it reinstalls only when that file
# changes. checkov runs with --skip-download: no calls home, no network at check time.
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin=$(scripts/python311.sh)

tools=.venv-tools
if [ ! -x "$tools/bin/python" ]; then
  echo "check-infra: creating $tools with $python_bin"
  "$python_bin" -m venv "$tools"
fi
[ -f "$tools/.gitignore" ] || echo "*" > "$tools/.gitignore"  # keep it out of git status
stamp="$tools/.requirements.sha"
want=$(sha256sum requirements-infra.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "check-infra: installing requirements-infra.txt into $tools"
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-infra.txt
  echo "$want" > "$stamp"
fi

# A .bicep file that pycep cannot parse is skipped by checkov with only a log line; the pytest
# test tests/unit/infra/test_bicep.py parses every file and fails on that instead.
checkov=("$tools/bin/checkov" --quiet --compact --skip-download)

echo "== checkov bicep (infra/)"
"${checkov[@]}" --directory infra --framework bicep
echo "== checkov github_actions (.github/workflows/)"
"${checkov[@]}" --directory .github/workflows --framework github_actions
