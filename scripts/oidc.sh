#!/usr/bin/env bash
# Installs the real OpenID provider that mcpgate's identity tests
# (test/identity) start: panva's oidc-provider, an OpenID Certified
# authorization server for Node.js, from the npm registry, into a cache
# folder, once. The tests start it themselves, on a loopback port of their
# own, through test/internal/oidcprovider (which runs its provider.mjs with
# static clients, the client_credentials grant, RFC 8707 resource
# indicators and JWT access tokens, and can rotate its signing key).
#
#   eval "$(scripts/oidc.sh install DIR)"
#       installs oidc-provider OIDC_PROVIDER_VERSION into DIR/oidc-provider
#       (reused when that version is there) and prints exactly one line on
#       stdout,
#         export MCPGATE_TEST_OIDC_PROVIDER='NODE PACKAGE-DIR'
#       the Node.js to run it with and the package's folder; everything else
#       goes to stderr.
#
# Node: $NODE if set, else the Node 22 that scripts/conformance.sh installs
# into ../conformance beside DIR (scripts/test.sh installs it first), else
# `node` on PATH when it is 20.19 or later, else Node 22 from the npm package
# node-linux-<arch>@22 into DIR/node22. Needs npm (Debian: apt-get install npm).
set -euo pipefail

OIDC_PROVIDER_VERSION=9.13.3
NODE_MAJOR=22
prog=scripts/oidc.sh

die() { echo "$prog: $*" >&2; exit 1; }
note() { echo "$prog: $*" >&2; }

node_arch() {
  case "$(uname -m)" in
    x86_64 | amd64) echo x64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) die "no node-linux-* npm package for this machine's architecture ($(uname -m))" ;;
  esac
}

# node_ok NODE: whether NODE runs and is 20.19 or later (oidc-provider 9's engines).
node_ok() {
  [ -x "$1" ] || command -v "$1" >/dev/null || return 1
  "$1" -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' 2>/dev/null
}

find_node() {
  local dir=$1 n
  if [ -n "${NODE:-}" ]; then
    node_ok "$NODE" || die "NODE=$NODE is not a Node.js 20.19 or later"
    echo "$NODE"; return
  fi
  for n in "$(dirname "$dir")/conformance/node22/node_modules/node-linux-$(node_arch)/bin/node" \
    "$dir/node22/node_modules/node-linux-$(node_arch)/bin/node"; do
    if node_ok "$n"; then echo "$n"; return; fi
  done
  if n=$(command -v node) && node_ok "$n"; then echo "$n"; return; fi
  note "installing node-linux-$(node_arch)@$NODE_MAJOR (npm)"
  npm install --prefix "$dir/node22" --no-audit --no-fund --loglevel=error "node-linux-$(node_arch)@$NODE_MAJOR" >&2 ||
    die "npm install node-linux-$(node_arch)@$NODE_MAJOR failed"
  n="$dir/node22/node_modules/node-linux-$(node_arch)/bin/node"
  node_ok "$n" || die "$n is missing or too old after npm install"
  echo "$n"
}

cmd_install() {
  local dir=$1 node pkg v
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if ! command -v npm >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    note "npm is not installed; installing it (apt-get install npm)"
    { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends npm >&2; } || note "apt-get could not install npm"
  fi
  command -v npm >/dev/null || die "npm is not on PATH (Debian: apt-get install npm)"
  node=$(find_node "$dir")
  pkg="$dir/oidc-provider/node_modules/oidc-provider"
  v=$("$node" -p 'require(process.argv[1]).version' "$pkg/package.json" 2>/dev/null || true)
  if [ "$v" = "$OIDC_PROVIDER_VERSION" ] && [ -f "$pkg/lib/index.js" ]; then
    note "oidc-provider $OIDC_PROVIDER_VERSION: already installed"
  else
    note "installing oidc-provider@$OIDC_PROVIDER_VERSION (npm, under Node $("$node" --version))"
    PATH="$(dirname "$node"):$PATH" npm install --prefix "$dir/oidc-provider" --no-audit --no-fund --loglevel=error \
      "oidc-provider@$OIDC_PROVIDER_VERSION" >&2 || die "npm install oidc-provider@$OIDC_PROVIDER_VERSION failed"
    [ -f "$pkg/lib/index.js" ] || die "oidc-provider is missing from $dir/oidc-provider after npm install"
  fi
  echo "export MCPGATE_TEST_OIDC_PROVIDER='$node $pkg'"
}

case "${1:-}" in
  install) [ $# -eq 2 ] || die "usage: $prog install DIR"; cmd_install "$2" ;;
  -h | --help | help | "") sed -n '2,/^set -euo pipefail/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command $1; usage: $prog install DIR" ;;
esac
