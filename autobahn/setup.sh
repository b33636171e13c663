#!/usr/bin/env bash
# Installs the Autobahn testsuite's `wstest` into autobahn/.tooling/ (git-ignored).
#
# wstest (PyPI: autobahntestsuite, newest 25.10.1) is Python 2.7 only, and
# Debian bookworm has no Python 2. So this script:
#   1. downloads Python 2.7 and the shared libraries bookworm lacks (libssl1.1,
#      libffi7) from Debian *bullseye* with `apt-get download`, using a private
#      sources list and private apt state/cache under .tooling/apt (the
#      system's apt configuration is neither read for sources nor modified);
#   2. unpacks them with `dpkg -x` into .tooling/py2 (nothing is installed
#      system-wide);
#   3. bootstraps pip 20.3.4 for Python 2.7 from its wheel (fetched with
#      Python 3's pip), downloads the pinned closure in requirements-py2.txt
#      (Python 2's pip; Python 3's pip as a fallback), builds the few sdists
#      into wheels, and installs everything into .tooling/site;
#   4. writes the wrapper .tooling/bin/wstest (sets LD_LIBRARY_PATH etc.).
#
# Every stage is keyed by a hash of its inputs and skipped when already done,
# so a second run takes about a second. Downloads are cached under .tooling/
# too. Delete autobahn/.tooling to start from scratch.
#
# Needs: bash, apt-get, dpkg, python3 with pip, a C compiler (for wsaccel, the
# C accelerator wstest uses for masking and UTF-8 validation), network access
# to Debian's mirror and PyPI.
#
# Environment knobs (all optional):
#   AUTOBAHN_TOOLING     tooling prefix (default: <this dir>/.tooling)
#   AUTOBAHN_DEBIAN_MIRROR  Debian mirror (default: http://deb.debian.org/debian)
#   AUTOBAHN_PY3_DOWNLOAD=1 download the Python 2 packages with Python 3's pip
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
T="${AUTOBAHN_TOOLING:-$HERE/.tooling}"
MIRROR="${AUTOBAHN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bullseye
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
REQS="$HERE/requirements-py2.txt"

# Debian bullseye packages that make up Python 2.7 (the -dev ones give the
# headers to build wsaccel), plus the libraries bookworm no longer has.
DEBS="python2.7 python2.7-minimal libpython2.7-minimal libpython2.7-stdlib python2.7-dev libpython2.7-dev libssl1.1 libffi7"
# If `ldd` finds other libraries missing on some machine, these are fetched
# from bullseye too (soname=package).
LIB_PACKAGES="libssl.so.1.1=libssl1.1 libcrypto.so.1.1=libssl1.1 libffi.so.7=libffi7 libbz2.so.1.0=libbz2-1.0 libdb-5.3.so=libdb5.3 libexpat.so.1=libexpat1 libncursesw.so.6=libncursesw6 libnsl.so.2=libnsl2 libreadline.so.8=libreadline8 libsqlite3.so.0=libsqlite3-0 libtinfo.so.6=libtinfo6 libtirpc.so.3=libtirpc3 libcrypt.so.1=libcrypt1 libz.so.1=zlib1g libgssapi_krb5.so.2=libgssapi-krb5-2 libkrb5.so.3=libkrb5-3 libk5crypto.so.3=libk5crypto3 libcom_err.so.2=libcom-err2 libkrb5support.so.0=libkrb5support0 libkeyutils.so.1=libkeyutils1"
# pip for Python 2.7 and the tools needed to build the sdists (wsaccel's
# pyproject.toml asks for Cython~=3.0.0; 3.0.12 still supports Python 2.7).
BOOTSTRAP="pip==20.3.4 setuptools==44.0.0 wheel==0.37.1"
BUILD_ONLY="Cython==3.0.12 wheel==0.37.1"

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }
key() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }
done_with() { [ -f "$T/stamps/$1" ] && [ "$(cat "$T/stamps/$1")" = "$2" ]; }
mark() { printf '%s\n' "$2" >"$T/stamps/$1"; }

mkdir -p "$T/stamps"
# One setup at a time.
exec 9>"$T/.lock"
flock 9

MULTIARCH="$(uname -m)-linux-gnu"
PY2="$T/py2"
PYBIN="$PY2/usr/bin/python2.7"
PYLIB="$PY2/usr/lib/$MULTIARCH"

# Run Python 2.7 from the private prefix.
py2() {
  env -u PYTHONPATH -u PIP_FIND_LINKS -u PIP_REQUIRE_VIRTUALENV \
    LD_LIBRARY_PATH="$PYLIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    PYTHONHOME="$PY2/usr" PYTHONNOUSERSITE=1 \
    PIP_CACHE_DIR="$T/cache/pip2" PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_PYTHON_VERSION_WARNING=1 \
    "$PYBIN" "$@"
}
# Python 2.7's pip from the bootstrap prefix.
pip2() {
  env -u PIP_FIND_LINKS -u PIP_REQUIRE_VIRTUALENV \
    LD_LIBRARY_PATH="$PYLIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    PYTHONHOME="$PY2/usr" PYTHONNOUSERSITE=1 PYTHONPATH="$T/pipenv" \
    PIP_CACHE_DIR="$T/cache/pip2" PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_PYTHON_VERSION_WARNING=1 \
    "$PYBIN" -m pip "$@"
}

# ---------------------------------------------------------------- apt (private)
APT="$T/apt"
apt_opts=(
  -o "Dir::Etc::SourceList=$APT/etc/sources.list"
  -o "Dir::Etc::SourceParts=$APT/etc/sources.list.d"
  -o "Dir::Etc::Parts=$APT/etc/apt.conf.d"
  -o "Dir::Etc::Preferences=$APT/etc/preferences"
  -o "Dir::Etc::PreferencesParts=$APT/etc/preferences.d"
  -o "Dir::Etc::Trusted=$APT/etc/trusted.gpg"
  -o "Dir::Etc::TrustedParts=$APT/etc/trusted.gpg.d"
  -o "Dir::State=$APT/state"
  -o "Dir::State::status=$APT/state/status"
  -o "Dir::Cache=$APT/cache"
  -o "Debug::NoLocking=1"
  -o "APT::Sandbox::User=root"
  -o "Acquire::Check-Valid-Until=false"
  -o "Acquire::Languages=none"
  -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::CNF::DefaultEnabled=false"
  -o "Acquire::Retries=3"
)
# The system's apt.conf.d is not read (its sources, pins and hooks are not ours),
# but an HTTP(S) proxy configured for apt is kept.
for proxy_key in Acquire::http::Proxy Acquire::https::Proxy; do
  proxy_value="$(apt-config dump "$proxy_key" 2>/dev/null | awk -v k="$proxy_key" '$1 == k {gsub(/[";]/, "", $2); print $2}')"
  [ -z "$proxy_value" ] || apt_opts+=(-o "$proxy_key=$proxy_value")
done
apt_private() { apt-get "${apt_opts[@]}" "$@"; }

apt_update() {
  command -v apt-get >/dev/null || die "apt-get not found (this script expects a Debian-based machine)"
  [ -r "$KEYRING" ] || die "$KEYRING missing (install debian-archive-keyring)"
  mkdir -p "$APT/etc/sources.list.d" "$APT/etc/apt.conf.d" "$APT/etc/preferences.d" "$APT/etc/trusted.gpg.d" \
    "$APT/state/lists/partial" "$APT/cache/archives/partial"
  touch "$APT/state/status"
  echo "deb [signed-by=$KEYRING] $MIRROR $SUITE main" >"$APT/etc/sources.list"
  log "apt-get update (private lists for Debian $SUITE from $MIRROR)"
  apt_private -q update >"$T/apt-update.log" 2>&1 || { cat "$T/apt-update.log" >&2; die "apt-get update for $SUITE failed"; }
  mark apt-lists "$(key "$MIRROR" "$SUITE")"
}

# download_debs PKG... : into $T/debs (kept as the cache).
download_debs() {
  mkdir -p "$T/debs"
  done_with apt-lists "$(key "$MIRROR" "$SUITE")" || apt_update
  log "apt-get download $*"
  if ! (cd "$T/debs" && apt_private -q download "$@" >"$T/apt-download.log" 2>&1); then
    # The lists may be stale (a package was superseded): refresh once.
    apt_update
    (cd "$T/debs" && apt_private -q download "$@" >"$T/apt-download.log" 2>&1) \
      || { cat "$T/apt-download.log" >&2; die "apt-get download failed"; }
  fi
}

have_deb() { compgen -G "$T/debs/${1}_*.deb" >/dev/null; }

# ---------------------------------------------------------------- 1+2. Python 2.7
all_debs() {
  local extra=""
  [ -f "$T/debs/extra-packages" ] && extra="$(cat "$T/debs/extra-packages")"
  echo $DEBS $extra
}

missing_libs() {
  # Prints the sonames that the unpacked interpreter and its C modules cannot find.
  local f
  for f in "$PYBIN" "$PY2"/usr/lib/python2.7/lib-dynload/*.so; do
    LD_LIBRARY_PATH="$PYLIB" ldd "$f" 2>/dev/null | awk '/not found/ {print $1}'
  done | sort -u
}

unpack_python() {
  local d
  log "unpacking Python 2.7 into $PY2"
  rm -rf "$PY2"
  mkdir -p "$PY2"
  for d in $(all_debs); do
    dpkg -x "$(ls "$T/debs/${d}"_*.deb | sort -V | tail -n1)" "$PY2"
  done
}

python_key() { key "$MULTIARCH" "$(all_debs)" "$(ls "$T/debs" 2>/dev/null | grep '\.deb$' || true)"; }

if ! done_with python "$(python_key)" || [ ! -x "$PYBIN" ]; then
  todo=""
  for d in $(all_debs); do have_deb "$d" || todo="$todo $d"; done
  [ -z "$todo" ] || download_debs $todo
  unpack_python
  # Fetch from bullseye any shared library this machine lacks, then re-check.
  missing="$(missing_libs)"
  if [ -n "$missing" ]; then
    log "libraries missing on this machine: $(echo $missing)"
    extra=""
    for so in $missing; do
      pkg=""
      for pair in $LIB_PACKAGES; do [ "${pair%%=*}" = "$so" ] && pkg="${pair#*=}"; done
      [ -n "$pkg" ] || die "no bullseye package known for $so (add it to LIB_PACKAGES in setup.sh)"
      extra="$extra $pkg"
    done
    extra="$(printf '%s\n' $extra | sort -u | tr '\n' ' ')"
    echo $extra $( [ -f "$T/debs/extra-packages" ] && cat "$T/debs/extra-packages") | tr ' ' '\n' | sort -u | tr '\n' ' ' >"$T/debs/extra-packages.new"
    mv "$T/debs/extra-packages.new" "$T/debs/extra-packages"
    download_debs $extra
    unpack_python
    missing="$(missing_libs)"
    [ -z "$missing" ] || die "still missing after fetching from $SUITE: $(echo $missing)"
  fi
  py2 -c 'import ssl, hashlib, ctypes, zlib, bz2, sqlite3, json' \
    || die "the unpacked Python 2.7 cannot import its standard modules"
  mark python "$(python_key)"
  rm -f "$T/stamps/site"   # a new interpreter means a new site
fi
log "Python: $(py2 -c 'import sys, ssl; print("%s, %s" % (sys.version.split()[0], ssl.OPENSSL_VERSION))')"

# ---------------------------------------------------------------- 3. pip for Python 2.7
WH="$T/wheelhouse"
if ! done_with pipenv "$(key $BOOTSTRAP)" || [ ! -d "$T/pipenv/pip" ]; then
  mkdir -p "$WH/bootstrap"
  log "downloading $BOOTSTRAP (Python 3's pip)"
  command -v python3 >/dev/null || die "python3 not found (needed to fetch pip for Python 2.7)"
  env -u PIP_FIND_LINKS python3 -m pip download -q --no-deps --only-binary=:all: -d "$WH/bootstrap" $BOOTSTRAP \
    || die "could not download $BOOTSTRAP"
  pipwhl="$(ls "$WH"/bootstrap/pip-20.3.4-*.whl | head -n1)"
  rm -rf "$T/pipenv.tmp"
  log "installing pip into $T/pipenv"
  py2 "$pipwhl/pip" install -q --no-index --no-deps --target "$T/pipenv.tmp" "$WH"/bootstrap/*.whl \
    || die "could not install pip for Python 2.7"
  rm -rf "$T/pipenv"
  mv "$T/pipenv.tmp" "$T/pipenv"
  mark pipenv "$(key $BOOTSTRAP)"
fi

# ---------------------------------------------------------------- 3b. download the pinned closure
reqs_key() { key "$(cat "$REQS")" $BUILD_ONLY; }
if ! done_with download "$(reqs_key)"; then
  mkdir -p "$WH/dl"
  build_reqs="$T/build-requirements.txt"
  printf '%s\n' $BUILD_ONLY >"$build_reqs"
  ok=0
  if [ "${AUTOBAHN_PY3_DOWNLOAD:-0}" != 1 ]; then
    log "downloading requirements-py2.txt with Python 2's pip into $WH/dl"
    if pip2 download -q --no-deps -d "$WH/dl" -r "$REQS" -r "$build_reqs" >"$T/pip-download.log" 2>&1; then
      ok=1
    else
      tail -n 5 "$T/pip-download.log" >&2
      log "Python 2's pip could not download; trying Python 3's pip"
    fi
  fi
  if [ $ok = 0 ]; then
    log "downloading requirements-py2.txt with Python 3's pip (for cp27mu) into $WH/dl"
    env -u PIP_FIND_LINKS python3 -m pip download -q --no-deps \
      --python-version 2.7 --implementation cp --abi cp27mu --abi none \
      --platform manylinux2010_x86_64 --platform manylinux1_x86_64 --platform linux_x86_64 --platform any \
      -d "$WH/dl" -r "$REQS" -r "$build_reqs" >"$T/pip-download.log" 2>&1 \
      || { tail -n 20 "$T/pip-download.log" >&2; die "could not download the Python 2 packages"; }
  fi
  mark download "$(reqs_key)"
fi

# ---------------------------------------------------------------- 3c. build sdists into wheels
if ! done_with build "$(reqs_key)"; then
  mkdir -p "$WH/built"
  sdists=()
  for f in "$WH"/dl/*.tar.gz "$WH"/dl/*.tar.bz2 "$WH"/dl/*.zip; do
    [ -e "$f" ] || continue
    sdists+=("$f")
  done
  if [ ${#sdists[@]} -gt 0 ]; then
    command -v cc >/dev/null || command -v gcc >/dev/null || die "a C compiler is needed to build wsaccel (apt-get install gcc)"
    log "building ${#sdists[@]} sdists into wheels: $(for f in "${sdists[@]}"; do basename "$f"; done | tr '\n' ' ')"
    CFLAGS="-I$PY2/usr/include -I$PY2/usr/include/python2.7" \
      pip2 wheel -q --no-index --no-deps --find-links "$WH/dl" -w "$WH/built" "${sdists[@]}" >"$T/pip-build.log" 2>&1 \
      || { tail -n 30 "$T/pip-build.log" >&2; die "building the sdists failed (see $T/pip-build.log)"; }
  fi
  mark build "$(reqs_key)"
fi

# ---------------------------------------------------------------- 3d. install into .tooling/site
site_key() { key "$(reqs_key)" "$(cat "$T/stamps/python")"; }
if ! done_with site "$(site_key)" || [ ! -d "$T/site/autobahntestsuite" ]; then
  log "installing the pinned packages into $T/site (offline, --no-deps)"
  rm -rf "$T/site.tmp"
  pip2 install -q --no-index --no-deps --find-links "$WH/dl" --find-links "$WH/built" \
    --target "$T/site.tmp" -r "$REQS" >"$T/pip-install.log" 2>&1 \
    || { tail -n 30 "$T/pip-install.log" >&2; die "pip install failed (see $T/pip-install.log)"; }
  rm -rf "$T/site"
  mv "$T/site.tmp" "$T/site"
  mark site "$(site_key)"
fi

# ---------------------------------------------------------------- 4. wrapper
mkdir -p "$T/bin"
cat >"$T/bin/wstest.py" <<'EOF'
# Generated by autobahn/setup.sh: runs wstest from ../site.
import os, site, sys
site.addsitedir(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'site'))
sys.argv[0] = 'wstest'
from autobahntestsuite.wstest import run
run()
EOF
cat >"$T/bin/wstest" <<EOF
#!/usr/bin/env bash
# Generated by autobahn/setup.sh: wstest on the private Python 2.7 in this prefix.
T="\$(cd "\$(dirname "\${BASH_SOURCE[0]}")/.." && pwd)"
export LD_LIBRARY_PATH="\$T/py2/usr/lib/$MULTIARCH\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export PYTHONHOME="\$T/py2/usr" PYTHONNOUSERSITE=1 PYTHONUNBUFFERED=1
unset PYTHONPATH
exec "\$T/py2/usr/bin/python2.7" "\$T/bin/wstest.py" "\$@"
EOF
chmod +x "$T/bin/wstest"

# ---------------------------------------------------------------- check
out="$("$T/bin/wstest" --autobahnversion 2>&1)" || { echo "$out" >&2; die "wstest does not run"; }
"$T/bin/wstest" --help >/dev/null 2>&1 || die "wstest --help failed"
accel="$(py2 -c "import site; site.addsitedir('$T/site'); import wsaccel, ujson; print('wsaccel ' + wsaccel.__version__)" 2>&1)" \
  || die "wsaccel/ujson do not import: $accel"
log "ready: $T/bin/wstest ($(echo $out | tr '\n' ' '); $accel)"
