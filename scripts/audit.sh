#!/usr/bin/env bash
# Audit the installed Python packages for known vulnerabilities (PyPI's advisory data, or OSV with
# AUDIT_SERVICE=osv). Run inside the project's virtual environment, e.g. from .ci/run:
#     bash scripts/audit.sh
# Fails on any advisory, and also when a package could not be audited (--strict): an advisory service that
# cannot be reached must not read as "no known vulnerabilities". Local version labels (torch 2.13.0+cpu) are
# stripped, since the advisory databases know the public release only.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q "pip-audit>=2.7"
frozen="$(mktemp)"
trap 'rm -f "$frozen"' EXIT
python -m pip freeze --exclude-editable --exclude pip-audit | grep -E '^[A-Za-z0-9_.-]+==' | sed -E 's/\+[A-Za-z0-9.]+$//' >"$frozen"
exec python -m pip_audit --strict --no-deps --disable-pip --progress-spinner off \
  --vulnerability-service "${AUDIT_SERVICE:-pypi}" -r "$frozen" "$@"
