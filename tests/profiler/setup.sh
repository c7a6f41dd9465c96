#!/usr/bin/env bash
# Install the released Baselinr profiler, the real client of our schema, into a
# virtualenv of its own (it is also a package named "baselinr"): once per
# machine, then cached. tests/profiler drives it as its users do.
#
# SQLAlchemy stays below 2.1: with 2.1 the profiler cannot reach PostgreSQL
# (2.1 maps postgresql:// to psycopg 3; 0.9.0 depends on psycopg2). PyMySQL is
# the driver its MySQL connector names but does not declare.
set -euo pipefail
version="${BASELINR_PROFILER_VERSION:-0.9.0}"
venv="${BASELINR_PROFILER_VENV:-$HOME/.cache/baselinr-test/profiler-$version}"
if [ -f "$venv/.complete" ] && "$venv/bin/python" -I -c "import baselinr" 2>/dev/null; then
  echo "released profiler $version: $venv (cached)"
  exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
  "baselinr==$version" "sqlalchemy>=2.0,<2.1" "pymysql>=1.1,<2"
"$venv/bin/python" -I -c "import baselinr.cli, baselinr.rca.storage, baselinr.quality.storage"
touch "$venv/.complete"
echo "released profiler $version: $venv"
