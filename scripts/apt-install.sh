#!/usr/bin/env bash
# Install Debian packages that are not installed yet: apt-install.sh PKG...
# Without root, print the command to run instead of failing half-way.
set -euo pipefail
missing=()
for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; else
        echo "meshserve setup needs these Debian packages: ${missing[*]}" >&2
        echo "Ask an administrator to run: apt-get install -y --no-install-recommends ${missing[*]}" >&2
        echo "(or see README.md, 'Without root')" >&2
        exit 1
    fi
else SUDO=; fi
lists=$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' 2>/dev/null | head -1)
if [ -z "$lists" ] || [ -n "$(find /var/lib/apt/lists -maxdepth 0 -mmin +720 2>/dev/null)" ]; then
    echo "    apt-get update"
    $SUDO apt-get update -qq
fi
echo "    installing ${missing[*]}"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
