#!/usr/bin/env bash
# Refresh requirements/test-constraints.txt, the exact versions the test suite runs with:
# install the test extra into a fresh throwaway virtual environment with the newest versions
# pip resolves, then freeze them. With --test, also run the default suite there (commit the
# new lock only once it passes). See TESTING.md.
set -euo pipefail
cd "$(dirname "$0")/.."
lock=requirements/test-constraints.txt
mkdir -p "$(dirname "$lock")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
pip="$work/venv/bin/pip"
"$pip" install --quiet torch==2.13.0
"$pip" install --quiet -e ".[test]"
{
    echo "# The versions the test suite passes with: pip freeze of a fresh virtual environment"
    echo "# with the test extra, $(date -u +%F), Python $("$work/venv/bin/python" -c \
        'import platform; print(platform.python_version())'), Linux x86_64. Refresh with"
    echo "# tools/lock-tests.sh (TESTING.md). Pip constraints (-c) of the README's test command"
    echo "# and .ci/run; users' installs (pip install -e .) keep pyproject's ranges."
    # hptransfer itself is editable (left out); torch without a local label (+cpu, +cu...)
    "$pip" freeze --exclude-editable | sed -E 's/^(torch==[^+]+)\+.*/\1/'
} >"$work/lock.txt"
mv "$work/lock.txt" "$lock"  # whole or not at all
echo "wrote $lock ($(grep -vc '^#' "$lock") packages)"
if [[ "${1:-}" == "--test" ]]; then
    "$work/venv/bin/python" -m pytest
fi
