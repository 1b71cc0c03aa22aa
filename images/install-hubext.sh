#!/bin/sh
# Install the hubext wheel into the Python of the image being built, moving
# none of the packages already there, then check the result:
#
#   sh install-hubext.sh DIR MODULE...
#
# DIR holds exactly one hubext-*.whl. Every package already installed is
# held at its version (a constraints file made from `pip list`), so pip adds
# hubext and what it lacks but never upgrades jupyterhub, kubespawner,
# tornado or traitlets. HUBEXT_CONSTRAINTS names another constraints file
# instead: dev/release-check passes the image's own requirements file to run
# this same install in a virtualenv. Afterwards `pip check` must pass and
# every MODULE must import.
set -eu

# from / on, so that no package in the current directory (a checkout's
# hubext/, or its hubext.egg-info) stands in for the installed one
dir=$(cd "$1" && pwd)
shift
modules=$*
cd /

set -- "$dir"/hubext-*.whl
if [ "$#" -ne 1 ] || [ ! -f "$1" ]; then
  echo "install-hubext: need exactly one hubext wheel in $dir, found: $*" >&2
  exit 1
fi
wheel=$1

constraints=${HUBEXT_CONSTRAINTS:-}
if [ -z "$constraints" ]; then
  constraints=$(mktemp)
  python -m pip list --format=freeze >"$constraints"
fi

python -m pip install --no-cache-dir --root-user-action=ignore -q \
  -c "$constraints" "$wheel"
[ -n "${HUBEXT_CONSTRAINTS:-}" ] || rm -f "$constraints"
python -m pip check
python - $modules <<'PY'
import importlib
import sys

for name in sys.argv[1:]:
    importlib.import_module(name)
print("install-hubext: imported", ", ".join(sys.argv[1:]) or "nothing")
PY
