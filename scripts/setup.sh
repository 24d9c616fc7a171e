#!/bin/sh
# Installs the Debian packages qlab needs, only those missing
# (libxml2-utils: xmllint, which the tests use on the report's SVG charts).
# As root it runs apt-get; otherwise it names the packages and stops.
# Then, where npm is available, ONNX Runtime (npm's onnxruntime-node) under
# .ort/ for scripts/ort_compare and its test (skipped with a message when the
# registry is unreachable; --ort makes that an error). qlab never needs Node.
# --fuzz adds what `make fuzz` needs: clang with libFuzzer and its OpenMP.
set -e
ORT_ONLY=0; [ "$1" = "--ort" ] && ORT_ONLY=1
EXTRA=""; [ "$1" = "--fuzz" ] && EXTRA="clang libclang-rt-14-dev libomp-14-dev"
ROOT=$(cd "$(dirname "$0")/.." && pwd)

install_ort() {
    [ -f "$ROOT/.ort/node_modules/onnxruntime-node/package.json" ] && return 0
    if ! command -v npm >/dev/null 2>&1; then
        echo "setup: npm not found: ONNX Runtime comparisons will be skipped (apt-get install npm, then make ort)" >&2
        return $ORT_ONLY
    fi
    mkdir -p "$ROOT/.ort"
    [ -f "$ROOT/.ort/package.json" ] || echo '{"name": "qlab-ort", "private": true}' > "$ROOT/.ort/package.json"
    echo "setup: installing onnxruntime-node under .ort/ (npm)" >&2
    # the package carries the CPU library; ONNXRUNTIME_NODE_INSTALL=skip skips the optional GPU download
    if (cd "$ROOT/.ort" && ONNXRUNTIME_NODE_INSTALL=skip timeout 300 npm install --no-audit --no-fund \
            --loglevel=error --fetch-retries=1 --fetch-timeout=20000 onnxruntime-node >&2); then
        return 0
    fi
    echo "setup: could not install onnxruntime-node (registry unreachable?): ORT comparisons will be skipped" >&2
    return $ORT_ONLY
}

if [ $ORT_ONLY -eq 1 ]; then install_ort; exit $?; fi
PKGS="gcc make pkg-config libopenblas-openmp-dev libdnnl-dev liblua5.4-dev libncurses-dev \
libcjson-dev zlib1g-dev dataset-fashion-mnist tmux libxml2-utils libprotobuf-c-dev protobuf-c-compiler \
libonnx-dev libonnx-testdata $EXTRA"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && { install_ort || true; exit 0; }
if [ "$(id -u)" -ne 0 ]; then
    echo "qlab needs these Debian packages:$missing" >&2
    echo "Install them as root:  apt-get install -y$missing" >&2
    exit 1
fi
echo "setup: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q $missing >&2 || { apt-get update -q >&2 && apt-get install -y -q $missing >&2; }
install_ort || true
