#!/bin/sh
# Installs the Debian packages qlab needs, only those missing
# (libxml2-utils: xmllint, which the tests use on the report's SVG charts).
# As root it runs apt-get; otherwise it names the packages and stops.
set -e
PKGS="gcc make pkg-config libopenblas-openmp-dev liblua5.4-dev libncurses-dev \
libcjson-dev zlib1g-dev dataset-fashion-mnist tmux libxml2-utils"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "qlab needs these Debian packages:$missing" >&2
    echo "Install them as root:  apt-get install -y$missing" >&2
    exit 1
fi
echo "setup: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q $missing >&2 || { apt-get update -q >&2 && apt-get install -y -q $missing >&2; }
