#!/bin/sh
# Installs the Debian 12 packages vigil needs to build, test and run.
# As root it installs what is missing; otherwise it prints the exact apt-get line.
set -eu
PKGS="build-essential pkg-config liblua5.4-dev lua5.4 lua-lpeg lua-lpeg-dev lua-cjson lua-cjson-dev \
libmicrohttpd-dev libseccomp-dev libpcre2-dev libsqlite3-dev libjansson-dev lua-busted lua-check \
curl perl python3"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "deps: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
else
    echo "deps: missing Debian packages; run as root:" >&2
    echo "  apt-get update && apt-get install -y$missing" >&2
    exit 1
fi
