#!/usr/bin/env bash
# Downloads every wheel that baselax and its chosen extras need, for one Python
# version and one Linux platform, into DIR: run it on a machine with network
# (a cluster's login node), copy DIR over, and install with no network:
#
#   scripts/offline_wheels.sh DIR --python-version 3.12 --extra cuda12
#   pip install --no-index --find-links DIR "baselax[cuda12]"        # on the offline node
#
# (or, from a checkout there, `pip install --no-index --find-links DIR -e ".[cuda12]"`:
# DIR also holds setuptools and wheel, the project's build requirements).
#
# Options:
#   --python-version X.Y   the target's Python (default: the python3 running this)
#   --extra NAME           an extra of the project (cuda12, cuda13, tpu, tensorboard,
#                          render, dev); repeat for several
#   --arch x86_64|aarch64  the target's machine (default x86_64)
#   --glibc 2.N            the newest glibc the target has (default 2.28: RHEL/Rocky 8
#                          and newer; `ldd --version` on the target tells); wheels
#                          built for manylinux_2_17 .. manylinux_2_N qualify
#   --python CMD           the Python whose pip downloads (default python3)
#
# Only wheels are fetched (--only-binary=:all:): nothing needs compiling there.
set -euo pipefail

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

[[ $# -ge 1 ]] || usage 2
case "$1" in -h|--help) usage 0 ;; -*) echo "error: the first argument is DIR" >&2; usage 2 ;; esac
dir=$1; shift
python=python3
pyver=""
arch=x86_64
glibc=2.28
extras=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --python-version) pyver=$2; shift 2 ;;
    --extra) extras+=("$2"); shift 2 ;;
    --arch) arch=$2; shift 2 ;;
    --glibc) glibc=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "error: unknown option $1" >&2; usage 2 ;;
  esac
done
[[ -n "$pyver" ]] || pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[[ "$pyver" =~ ^3\.[0-9]+$ ]] || { echo "error: --python-version wants X.Y, got $pyver" >&2; exit 2; }
[[ "$arch" == x86_64 || "$arch" == aarch64 ]] || { echo "error: --arch x86_64 or aarch64" >&2; exit 2; }
minor=${glibc#2.}
[[ "$glibc" =~ ^2\.[0-9]+$ && $minor -ge 17 ]] || { echo "error: --glibc 2.N with N >= 17" >&2; exit 2; }

root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# pip matches platform tags exactly: name every manylinux tag the target accepts.
platforms=(--platform "manylinux2014_$arch")
[[ "$arch" == x86_64 ]] && platforms+=(--platform manylinux1_x86_64 --platform manylinux2010_x86_64)
for ((n = 17; n <= minor; n++)); do platforms+=(--platform "manylinux_2_${n}_$arch"); done

# The project itself, as a wheel (pure Python), so the offline side needs no build.
echo "building the baselax wheel into $dir"
"$python" -m pip wheel --quiet --no-deps --no-build-isolation -w "$dir" "$root" 2>/dev/null ||
  "$python" -m pip wheel --quiet --no-deps -w "$dir" "$root"
wheel=$(ls -t "$dir"/baselax-*.whl | head -n 1)

spec="$wheel"
if [[ ${#extras[@]} -gt 0 ]]; then spec="$wheel[$(IFS=,; echo "${extras[*]}")]"; fi
echo "downloading wheels of $(basename "$spec") and its requirements for Python $pyver," \
     "manylinux (glibc <= $glibc) $arch"
"$python" -m pip download --quiet --only-binary=:all: --implementation cp \
  --python-version "$pyver" "${platforms[@]}" -d "$dir" "$spec" "setuptools>=68" wheel
echo "$(ls "$dir"/*.whl | wc -l) wheels, $(du -sh "$dir" | cut -f1) in $dir. Offline, install with:"
echo "  pip install --no-index --find-links $dir \"baselax${spec#$wheel}\""
