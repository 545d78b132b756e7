#!/usr/bin/env bash
# Installs and runs the official MCP conformance suite
# (@modelcontextprotocol/conformance) against an MCP server over streamable
# HTTP, and proves it against the Go SDK's reference "everything" server.
#
# Usage:
#   scripts/conformance.sh install DIR
#       Installs into the cache folder DIR (idempotent: what is already there
#       at the right version is reused):
#         DIR/bin/everything-server   the Go SDK's conformance server (go install)
#         DIR/node22/                 Node 22 from the npm package node-linux-<arch>@22
#         DIR/suite/                  @modelcontextprotocol/conformance, installed with npm
#         DIR/suite2026/              @modelcontextprotocol/conformance 0.2.0-alpha.12, the
#                                     suite with the frozen 2026-07-28 requirement set
#         DIR/everything-ts/          @modelcontextprotocol/server-everything (the TypeScript
#                                     reference server the black-box tests run), with npm
#         DIR/sdk-ts/                 @modelcontextprotocol/sdk (the TypeScript SDK whose
#                                     client the comparison battery, test/federation, runs)
#         DIR/sdk-ts2/                @modelcontextprotocol/client and @modelcontextprotocol/server
#                                     (the TypeScript SDK v2, MCP 2026-07-28, whose client and
#                                     server the cross-era matrix, test/eras, runs)
#       and prints the versions installed (also written to DIR/versions.txt).
#       Needs go and npm on PATH; the system's node may be older than 22.
#
#   scripts/conformance.sh everything-command DIR
#       Prints the command that runs the installed TypeScript server-everything
#       ("NODE ENTRY"; append sse, streamableHttp or stdio; it listens on PORT),
#       for MCPGATE_TEST_EVERYTHING. Fails if it is not installed.
#
#   scripts/conformance.sh ts-sdk-dir DIR
#       Prints the folder of the installed TypeScript SDK package, for
#       MCPGATE_TEST_TS_SDK. Fails if it is not installed.
#
#   scripts/conformance.sh ts-sdk2-dir DIR
#       Prints the npm folder holding the installed TypeScript SDK v2 packages
#       (DIR/sdk-ts2, with node_modules/@modelcontextprotocol/client and
#       .../server), for MCPGATE_TEST_TS_SDK2. Fails if they are not installed.
#
#   scripts/conformance.sh server DIR PORT
#       Starts DIR/bin/everything-server -http 127.0.0.1:PORT -stateless=false
#       in the background, waits (at most SERVER_WAIT seconds) until it accepts
#       connections and prints its PID, alone, on stdout. Its log goes to
#       DIR/logs/everything-server-PORT.log. Stop it with `kill PID`.
#       The server answers MCP on every path; use http://127.0.0.1:PORT/mcp.
#
#   scripts/conformance.sh run DIR URL
#       Runs the suite's active server scenarios against URL (an MCP endpoint
#       on a loopback address: the suite's DNS-rebinding checks need one). The
#       suite's output and its per-check JSON go to a fresh folder under
#       DIR/results/ (or RESULTS_DIR); a summary is printed, naming every check
#       that did not succeed. The last line is `conformance: N passed, M failed`.
#       Exits non-zero if any check failed, if fewer than EXPECTED_CHECKS checks
#       succeeded (checks that ended as WARNING or INFO, or never ran, count as
#       failed in the last line), or if the suite did not finish.
#
#   scripts/conformance.sh self-test DIR
#       install + server on a free loopback port + run against it + stop the
#       server. Against the reference server every check must pass.
#
#   scripts/conformance.sh run-2026 DIR URL
#       Runs the 2026 suite (DIR/suite2026) with --requirements 2026-07-28
#       against URL: the scenarios MCP 2026-07-28 requires of a server, at its
#       stateless wire, plus those it runs without scoring (the tasks
#       extension, and scenarios pending in the suite). Only scored checks
#       count: the scored scenarios are those `conformance list --requirements
#       2026-07-28` names for servers, and each one's checks are read from its
#       checks.json. The last line is `conformance 2026-07-28: N passed, M
#       failed (scored; K not-scored scenarios run, J failing)`. Exits non-zero
#       if a scored check failed, if a scored scenario did not run, if fewer
#       than EXPECTED_CHECKS_2026 scored checks succeeded (a scored check that
#       ended as WARNING or SKIPPED, or never ran, counts as failed; one that
#       ended INFO, the suite's mark for behaviour the specification leaves
#       optional, counts as passed and is named), if the
#       suite's exit status says a scored scenario failed, or if it did not
#       finish.
#
#   scripts/conformance.sh self-test-2026 DIR
#       As self-test, with everything-server -stateless=true and run-2026.
#
#   scripts/conformance.sh through-mcpgate DIR MCPGATE
#       install + the reference server + the mcpgate binary MCPGATE (`serve`,
#       SQLite in a temporary folder, a free loopback port) with the server
#       registered through the admin API (POST /gateways), then runs the suite
#       against mcpgate's 1:1 relay, http://127.0.0.1:PORT/gateways/{id}/mcp,
#       and stops both. Every check must pass, as against the server itself.
#       The suite cannot send a token, so mcpgate runs with
#       AUTH_REQUIRED=false; it listens on loopback only.
#
#   scripts/conformance.sh through-mcpgate-2026 DIR MCPGATE
#       As through-mcpgate, with everything-server -stateless=true (registered
#       the same way, through POST /gateways) and run-2026 against the relay.
#
# Environment:
#   EXPECTED_CHECKS   checks that must succeed (default 40, the count of
#                     conformance 0.1.16's active server suite)
#   EXPECTED_CHECKS_2026
#                     scored checks that must succeed in run-2026 (default 121,
#                     what the reference server passes: 37 scored scenarios)
#   SUITE_TIMEOUT     seconds the suite may run before it is killed (default 600)
#   SERVER_WAIT       seconds to wait for the server to accept connections (default 30)
#   RESULTS_DIR       where `run` writes its output (default: a new folder under DIR/results)
set -euo pipefail

EVERYTHING_SERVER_PKG=github.com/modelcontextprotocol/go-sdk/conformance/everything-server
GO_SDK_VERSION=v1.8.0
SUITE_PKG=@modelcontextprotocol/conformance
SUITE_VERSION=0.1.16
# The suite whose frozen requirement set says what MCP 2026-07-28 requires.
SUITE2026_VERSION=0.2.0-alpha.12
REQUIREMENTS_2026=2026-07-28
NODE_MAJOR=22
EVERYTHING_TS_PKG=@modelcontextprotocol/server-everything
EVERYTHING_TS_VERSION=2026.8.31
TS_SDK_PKG=@modelcontextprotocol/sdk
TS_SDK_VERSION=1.32.2
# The TypeScript SDK v2: two packages of one version, installed together.
TS_SDK2_PKGS=(@modelcontextprotocol/client @modelcontextprotocol/server)
TS_SDK2_VERSION=2.4.0
EXPECTED_CHECKS=${EXPECTED_CHECKS:-40}
EXPECTED_CHECKS_2026=${EXPECTED_CHECKS_2026:-121}
SUITE_TIMEOUT=${SUITE_TIMEOUT:-600}
SERVER_WAIT=${SERVER_WAIT:-30}

prog=scripts/conformance.sh

die() { echo "$prog: $*" >&2; exit 1; }
note() { echo "$prog: $*" >&2; }

usage() {
  sed -n '2,/^set -euo pipefail/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# abs DIR: DIR made absolute (created if missing).
abs() { mkdir -p "$1" && (cd "$1" && pwd); }

# --- paths inside the cache folder -------------------------------------------

server_bin() { echo "$1/bin/everything-server"; }

node_arch() {
  case "$(uname -m)" in
    x86_64 | amd64) echo x64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) die "no node-linux-* npm package for this machine's architecture ($(uname -m))" ;;
  esac
}

node_bin() { echo "$1/node22/node_modules/node-linux-$(node_arch)/bin/node"; }

# suite_pkg_dir DIR [SUBDIR]: the package folder of the suite installed in
# DIR/SUBDIR (suite, the default, or suite2026).
suite_pkg_dir() { echo "$1/${2:-suite}/node_modules/$SUITE_PKG"; }

everything_ts_dir() { echo "$1/everything-ts/node_modules/$EVERYTHING_TS_PKG"; }

ts_sdk_dir() { echo "$1/sdk-ts/node_modules/$TS_SDK_PKG"; }

ts_sdk2_dir() { echo "$1/sdk-ts2"; }

# everything_ts_entry DIR: the JavaScript file of server-everything's bin.
everything_ts_entry() { echo "$(everything_ts_dir "$1")/dist/index.js"; }

# suite_entry DIR [SUBDIR]: the JavaScript file of the package's `conformance` bin.
suite_entry() {
  local pkg
  pkg=$(suite_pkg_dir "$1" "${2:-}")
  "$(node_bin "$1")" -e '
    const pkg = require(process.argv[1] + "/package.json");
    const bin = typeof pkg.bin === "string" ? pkg.bin : pkg.bin && pkg.bin.conformance;
    if (!bin) { console.error("no conformance bin in " + process.argv[1] + "/package.json"); process.exit(1); }
    console.log(require("path").resolve(process.argv[1], bin));
  ' "$pkg"
}

# --- install -----------------------------------------------------------------

have_server() {
  local bin
  bin=$(server_bin "$1")
  [ -x "$bin" ] && go version -m "$bin" 2>/dev/null |
    grep -qE "^[[:space:]]+mod[[:space:]]+github.com/modelcontextprotocol/go-sdk[[:space:]]+$GO_SDK_VERSION([[:space:]]|\$)"
}

have_node() {
  local bin v
  bin=$(node_bin "$1")
  [ -x "$bin" ] || return 1
  v=$("$bin" -p 'process.versions.node.split(".")[0]' 2>/dev/null) || return 1
  [ "$v" -ge "$NODE_MAJOR" ] 2>/dev/null
}

# have_suite DIR [SUBDIR VERSION]: whether the suite VERSION (default
# SUITE_VERSION) is installed in DIR/SUBDIR (default suite).
have_suite() {
  local sub=${2:-suite} want=${3:-$SUITE_VERSION} pj v
  pj=$(suite_pkg_dir "$1" "$sub")/package.json
  [ -f "$pj" ] || return 1
  v=$("$(node_bin "$1")" -p 'require(process.argv[1]).version' "$pj" 2>/dev/null) || return 1
  [ "$v" = "$want" ] && [ -f "$(suite_entry "$1" "$sub")" ]
}

# install_suite DIR SUBDIR VERSION: installs the suite VERSION into DIR/SUBDIR
# unless it is there already.
install_suite() {
  local dir=$1 sub=$2 version=$3
  if have_suite "$dir" "$sub" "$version"; then
    note "$SUITE_PKG $version: already installed"
    return 0
  fi
  note "installing $SUITE_PKG@$version into $dir/$sub (npm, under Node $NODE_MAJOR)"
  # npm itself runs under the Node 22 found first on PATH, which is what the
  # package's engines field asks for.
  PATH="$(dirname "$(node_bin "$dir")"):$PATH" \
    npm install --prefix "$dir/$sub" --no-audit --no-fund --loglevel=error "$SUITE_PKG@$version" >&2 ||
    die "npm install $SUITE_PKG@$version failed"
  have_suite "$dir" "$sub" "$version" || die "$SUITE_PKG $version is missing from $dir/$sub after npm install"
}

have_everything_ts() {
  local pj v
  pj=$(everything_ts_dir "$1")/package.json
  [ -f "$pj" ] || return 1
  v=$("$(node_bin "$1")" -p 'require(process.argv[1]).version' "$pj" 2>/dev/null) || return 1
  [ "$v" = "$EVERYTHING_TS_VERSION" ] && [ -f "$(everything_ts_entry "$1")" ]
}

have_ts_sdk() {
  local pj v
  pj=$(ts_sdk_dir "$1")/package.json
  [ -f "$pj" ] || return 1
  v=$("$(node_bin "$1")" -p 'require(process.argv[1]).version' "$pj" 2>/dev/null) || return 1
  [ "$v" = "$TS_SDK_VERSION" ] && [ -f "$(ts_sdk_dir "$1")/dist/esm/client/index.js" ]
}

have_ts_sdk2() {
  local pkg pj v
  for pkg in "${TS_SDK2_PKGS[@]}"; do
    pj=$(ts_sdk2_dir "$1")/node_modules/$pkg/package.json
    [ -f "$pj" ] || return 1
    v=$("$(node_bin "$1")" -p 'require(process.argv[1]).version' "$pj" 2>/dev/null) || return 1
    [ "$v" = "$TS_SDK2_VERSION" ] || return 1
  done
}

cmd_install() {
  local dir=$1 missing=() start=$SECONDS
  # A fresh Debian machine may lack npm; as root it comes from Debian's packages.
  if ! command -v npm >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    note "npm is not installed; installing it (apt-get install npm)"
    if ! { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends npm >&2; }; then
      note "apt-get could not install npm"
    fi
  fi
  command -v go >/dev/null || missing+=("go (the Go toolchain, 1.25 or later, for go install $EVERYTHING_SERVER_PKG@$GO_SDK_VERSION)")
  command -v npm >/dev/null || missing+=("npm (Debian: apt-get install npm; for node-linux-$(node_arch)@$NODE_MAJOR and $SUITE_PKG@$SUITE_VERSION)")
  if [ ${#missing[@]} -gt 0 ]; then
    for m in "${missing[@]}"; do note "missing: $m"; done
    die "cannot install: ${#missing[@]} required tool(s) not on PATH"
  fi
  dir=$(abs "$dir")

  if have_server "$dir"; then
    note "everything-server $GO_SDK_VERSION: already installed"
  else
    note "installing everything-server $GO_SDK_VERSION (go install)"
    # GOFLAGS is cleared so that a -mod setting from the environment cannot
    # get in the way of `go install pkg@version`.
    (cd "$dir" && GOFLAGS="" GOBIN="$dir/bin" go install "$EVERYTHING_SERVER_PKG@$GO_SDK_VERSION") ||
      die "go install $EVERYTHING_SERVER_PKG@$GO_SDK_VERSION failed"
    have_server "$dir" || die "$(server_bin "$dir") is missing or not go-sdk $GO_SDK_VERSION after go install"
  fi

  if have_node "$dir"; then
    note "node $NODE_MAJOR: already installed"
  else
    note "installing node-linux-$(node_arch)@$NODE_MAJOR (npm)"
    npm install --prefix "$dir/node22" --no-audit --no-fund --loglevel=error "node-linux-$(node_arch)@$NODE_MAJOR" >&2 ||
      die "npm install node-linux-$(node_arch)@$NODE_MAJOR failed"
    have_node "$dir" || die "$(node_bin "$dir") is missing or older than Node $NODE_MAJOR after npm install"
  fi

  install_suite "$dir" suite "$SUITE_VERSION"
  install_suite "$dir" suite2026 "$SUITE2026_VERSION"

  if have_everything_ts "$dir"; then
    note "$EVERYTHING_TS_PKG $EVERYTHING_TS_VERSION: already installed"
  else
    note "installing $EVERYTHING_TS_PKG@$EVERYTHING_TS_VERSION (npm, under Node $NODE_MAJOR)"
    PATH="$(dirname "$(node_bin "$dir")"):$PATH" \
      npm install --prefix "$dir/everything-ts" --no-audit --no-fund --loglevel=error "$EVERYTHING_TS_PKG@$EVERYTHING_TS_VERSION" >&2 ||
      die "npm install $EVERYTHING_TS_PKG@$EVERYTHING_TS_VERSION failed"
    have_everything_ts "$dir" || die "$EVERYTHING_TS_PKG $EVERYTHING_TS_VERSION is missing from $dir/everything-ts after npm install"
  fi

  if have_ts_sdk "$dir"; then
    note "$TS_SDK_PKG $TS_SDK_VERSION: already installed"
  else
    note "installing $TS_SDK_PKG@$TS_SDK_VERSION (npm, under Node $NODE_MAJOR)"
    PATH="$(dirname "$(node_bin "$dir")"):$PATH" \
      npm install --prefix "$dir/sdk-ts" --no-audit --no-fund --loglevel=error "$TS_SDK_PKG@$TS_SDK_VERSION" >&2 ||
      die "npm install $TS_SDK_PKG@$TS_SDK_VERSION failed"
    have_ts_sdk "$dir" || die "$TS_SDK_PKG $TS_SDK_VERSION is missing from $dir/sdk-ts after npm install"
  fi

  if have_ts_sdk2 "$dir"; then
    note "${TS_SDK2_PKGS[*]} $TS_SDK2_VERSION: already installed"
  else
    note "installing ${TS_SDK2_PKGS[*]} $TS_SDK2_VERSION (npm, under Node $NODE_MAJOR)"
    PATH="$(dirname "$(node_bin "$dir")"):$PATH" \
      npm install --prefix "$(ts_sdk2_dir "$dir")" --no-audit --no-fund --loglevel=error \
      "${TS_SDK2_PKGS[@]/%/@$TS_SDK2_VERSION}" >&2 ||
      die "npm install ${TS_SDK2_PKGS[*]/%/@$TS_SDK2_VERSION} failed"
    have_ts_sdk2 "$dir" || die "${TS_SDK2_PKGS[*]} $TS_SDK2_VERSION are missing from $(ts_sdk2_dir "$dir") after npm install"
  fi

  local node sdk_version
  node=$(node_bin "$dir")
  sdk_version=$("$node" -p 'require(process.argv[1]).version' \
    "$dir/suite/node_modules/@modelcontextprotocol/sdk/package.json" 2>/dev/null || echo unknown)
  {
    echo "installed everything-server: $(server_bin "$dir") (github.com/modelcontextprotocol/go-sdk $GO_SDK_VERSION, built with $(go version -m "$(server_bin "$dir")" | head -1 | awk '{print $2}'))"
    echo "installed node: $node ($("$node" --version))"
    echo "installed suite: $(suite_entry "$dir") ($SUITE_PKG $("$node" "$(suite_entry "$dir")" --version), with @modelcontextprotocol/sdk $sdk_version)"
    echo "installed 2026 suite: $(suite_entry "$dir" suite2026) ($SUITE_PKG $("$node" "$(suite_entry "$dir" suite2026)" --version), requirements $REQUIREMENTS_2026)"
    echo "installed server-everything: $(everything_ts_entry "$dir") ($EVERYTHING_TS_PKG $EVERYTHING_TS_VERSION)"
    echo "installed TypeScript SDK: $(ts_sdk_dir "$dir") ($TS_SDK_PKG $TS_SDK_VERSION)"
    echo "installed TypeScript SDK v2: $(ts_sdk2_dir "$dir") (${TS_SDK2_PKGS[*]/%/ $TS_SDK2_VERSION})"
  } | tee "$dir/versions.txt"
  note "install done in $((SECONDS - start))s"
}

# cmd_everything_command DIR: prints "NODE ENTRY" for MCPGATE_TEST_EVERYTHING.
cmd_everything_command() {
  local dir
  dir=$(abs "$1")
  have_node "$dir" && have_everything_ts "$dir" ||
    die "$EVERYTHING_TS_PKG $EVERYTHING_TS_VERSION is not installed in $dir; run: $prog install $dir"
  echo "$(node_bin "$dir") $(everything_ts_entry "$dir")"
}

# cmd_ts_sdk_dir DIR: prints the SDK's package folder for MCPGATE_TEST_TS_SDK.
cmd_ts_sdk_dir() {
  local dir
  dir=$(abs "$1")
  have_node "$dir" && have_ts_sdk "$dir" ||
    die "$TS_SDK_PKG $TS_SDK_VERSION is not installed in $dir; run: $prog install $dir"
  ts_sdk_dir "$dir"
}

# cmd_ts_sdk2_dir DIR: prints the SDK v2's npm folder for MCPGATE_TEST_TS_SDK2.
cmd_ts_sdk2_dir() {
  local dir
  dir=$(abs "$1")
  have_node "$dir" && have_ts_sdk2 "$dir" ||
    die "${TS_SDK2_PKGS[*]} $TS_SDK2_VERSION are not installed in $dir; run: $prog install $dir"
  ts_sdk2_dir "$dir"
}

# --- server ------------------------------------------------------------------

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# start_server DIR PORT: starts the server as a child of this shell, stateless
# if SERVER_STATELESS is true (for 2026-07-28); sets SERVER_PID, or returns 1
# (having reported why) if it did not come up.
start_server() {
  local dir=$1 port=$2 bin log deadline
  bin=$(server_bin "$dir")
  [ -x "$bin" ] || die "$bin is not installed; run: $prog install $dir"
  mkdir -p "$dir/logs"
  log="$dir/logs/everything-server-$port.log"
  if port_in_use "$port"; then
    note "something already listens on 127.0.0.1:$port"
    return 1
  fi
  "$bin" -http "127.0.0.1:$port" "-stateless=${SERVER_STATELESS:-false}" </dev/null >"$log" 2>&1 &
  SERVER_PID=$!
  deadline=$((SECONDS + SERVER_WAIT))
  while ! port_in_use "$port"; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      note "everything-server exited before accepting connections on 127.0.0.1:$port; its log ($log):"
      tail -n 20 "$log" >&2 || true
      SERVER_PID=
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      note "everything-server did not accept connections on 127.0.0.1:$port within ${SERVER_WAIT}s; its log ($log):"
      tail -n 20 "$log" >&2 || true
      stop_pid "$SERVER_PID"
      SERVER_PID=
      return 1
    fi
    sleep 0.1
  done
}

# stop_pid PID: TERM, then KILL after 5 s; reaps the process if it is our child.
stop_pid() {
  local pid=$1 deadline
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 5))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}

cmd_server() {
  local dir=$1 port=$2
  if ! is_uint "$port" || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then die "bad port: $port"; fi
  dir=$(abs "$dir")
  SERVER_PID=
  start_server "$dir" "$port" || die "could not start everything-server on 127.0.0.1:$port"
  note "everything-server (pid $SERVER_PID) serves MCP at http://127.0.0.1:$port/mcp; stop it with: kill $SERVER_PID"
  echo "$SERVER_PID"
}

# free_port DIR: a TCP port free on 127.0.0.1 at the time of asking.
free_port() {
  "$(node_bin "$1")" -e '
    const s = require("net").createServer();
    s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });
  '
}

# --- run ---------------------------------------------------------------------

# report_checks RESULTS: one line per check that did not succeed, read from the
# suite's checks.json files.
report_checks() {
  # shellcheck disable=SC2016 # JavaScript, not shell, in single quotes
  "$NODE" -e '
    const fs = require("fs"), path = require("path");
    const root = process.argv[1];
    let dirs = [];
    try { dirs = fs.readdirSync(root); } catch (e) { process.exit(0); }
    const rows = [];
    for (const d of dirs.sort()) {
      let checks;
      try { checks = JSON.parse(fs.readFileSync(path.join(root, d, "checks.json"), "utf8")); } catch (e) { continue; }
      const scenario = d.replace(/^server-/, "").replace(/-\d{4}-\d\d-\d\dT.*$/, "");
      for (const c of checks) {
        if (c.status === "SUCCESS") continue;
        rows.push(`  ${c.status} ${scenario}/${c.id}: ${c.errorMessage || (c.details && c.details.message) || c.description || ""}`);
      }
    }
    if (rows.length) { console.log("checks that did not succeed:"); console.log(rows.join("\n")); }
  ' "$1" || true
}

# launch_suite DIR SUBDIR VERSION URL [ARG...]: runs the suite installed in
# DIR/SUBDIR (`server --url URL --output-dir OUT/checks ARG...`) with its
# output in OUT/suite.txt, OUT being a fresh folder under DIR/results (or
# RESULTS_DIR); sets SUITE_OUT to OUT, NODE, and SUITE_STATUS to its exit
# status (124 if it ran out of SUITE_TIMEOUT).
launch_suite() {
  local dir=$1 sub=$2 version=$3 url=$4 out entry
  shift 4
  is_uint "$SUITE_TIMEOUT" || die "SUITE_TIMEOUT must be a number, not $SUITE_TIMEOUT"
  if ! have_node "$dir" || ! have_suite "$dir" "$sub" "$version"; then
    die "the suite $SUITE_PKG $version is not installed in $dir/$sub; run: $prog install $dir"
  fi
  NODE=$(node_bin "$dir")
  entry=$(suite_entry "$dir" "$sub")
  if [ -n "${RESULTS_DIR:-}" ]; then
    out=$(abs "$RESULTS_DIR")
  else
    mkdir -p "$dir/results"
    out=$(mktemp -d "$dir/results/run-$(date +%Y%m%d-%H%M%S)-XXXX")
  fi
  note "running $SUITE_PKG $version${*:+ $*} against $url (output in $out/suite.txt)"
  # Run from the results folder so that nothing the suite writes lands elsewhere.
  # In the background and waited for, so that a signal to this script is
  # handled at once (the EXIT trap stops the suite) rather than after it.
  (cd "$out" && exec timeout -k 10 "$SUITE_TIMEOUT" "$NODE" "$entry" server --url "$url" --output-dir "$out/checks" "$@") \
    </dev/null >"$out/suite.txt" 2>&1 &
  SUITE_PID=$!
  SUITE_STATUS=0
  wait "$SUITE_PID" || SUITE_STATUS=$?
  SUITE_PID=
  SUITE_OUT=$out
}

# run_suite DIR URL: runs the suite and prints its summary; sets RESULT_LINE
# to the closing `conformance: N passed, M failed` line, which it leaves to
# its caller to print; returns non-zero if the run failed.
run_suite() {
  local dir=$1 url=$2 out status total passed failed missing scenarios
  is_uint "$EXPECTED_CHECKS" || die "EXPECTED_CHECKS must be a number, not $EXPECTED_CHECKS"
  dir=$(abs "$dir")
  launch_suite "$dir" suite "$SUITE_VERSION" "$url"
  out=$SUITE_OUT status=$SUITE_STATUS

  total=$(grep -E '^Total: [0-9]+ passed, [0-9]+ failed' "$out/suite.txt" | tail -n 1 || true)
  scenarios=$(grep -cE '^(✓|✗) [^ ]+: [0-9]+ passed, [0-9]+ failed$' "$out/suite.txt" || true)
  grep -E '^✗ ' "$out/suite.txt" | sed 's/^/failed scenario: /' || true
  report_checks "$out/checks"

  if [ -z "$total" ]; then
    [ $status -eq 124 ] && note "the suite did not finish within ${SUITE_TIMEOUT}s"
    note "the suite printed no 'Total:' line (exit status $status); the end of its output:"
    tail -n 30 "$out/suite.txt" >&2 || true
    RESULT_LINE="conformance: 0 passed, $EXPECTED_CHECKS failed"
    return 1
  fi
  passed=$(sed -E 's/^Total: ([0-9]+) passed.*/\1/' <<<"$total")
  failed=$(sed -E 's/^Total: [0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$total")
  missing=$((EXPECTED_CHECKS - passed - failed))
  [ $missing -lt 0 ] && missing=0
  echo "suite: $scenarios scenarios, $passed checks passed, $failed failed (expected $EXPECTED_CHECKS to pass; suite exit status $status)"
  if [ $missing -gt 0 ]; then
    echo "$missing expected check(s) did not succeed without failing (WARNING/INFO, or not run); counted as failed below"
  fi
  if [ "$passed" -gt "$EXPECTED_CHECKS" ]; then
    echo "note: more checks passed than EXPECTED_CHECKS=$EXPECTED_CHECKS; the suite may have changed"
  fi
  RESULT_LINE="conformance: $passed passed, $((failed + missing)) failed"
  [ "$failed" -eq 0 ] && [ $missing -eq 0 ] && [ $status -eq 0 ]
}

# score_2026 CHECKS SCORED: reads the checks.json of every scenario under
# CHECKS (folders server-SCENARIO-TIMESTAMP) and prints one line per scored
# check that did not succeed, one per scored scenario that left no
# checks.json, then `counts PASSED FAILED OTHER ABSENT RAN INFO`: scored
# checks that succeeded, failed, ended otherwise (WARNING, SKIPPED), scored
# scenarios absent, scored scenarios that ran, and scored checks that ended
# INFO (the suite's mark for behaviour the specification leaves optional,
# such as answering with an event stream rather than JSON, which a server
# did not show; not a failure). SCORED is the scored scenarios' names, one
# a line.
score_2026() {
  # shellcheck disable=SC2016 # JavaScript, not shell, in single quotes
  "$NODE" -e '
    const fs = require("fs"), path = require("path");
    const [root, scoredText] = process.argv.slice(1);
    const scored = new Set(scoredText.split("\n").filter(Boolean));
    const seen = new Set();
    let passed = 0, failed = 0, other = 0, info = 0;
    const rows = [];
    let dirs = [];
    try { dirs = fs.readdirSync(root); } catch (e) {}
    for (const d of dirs.sort()) {
      const scenario = d.replace(/^server-/, "").replace(/-\d{4}-\d\d-\d\dT.*$/, "");
      if (!scored.has(scenario)) continue;
      let checks;
      try { checks = JSON.parse(fs.readFileSync(path.join(root, d, "checks.json"), "utf8")); }
      catch (e) { rows.push(`  UNREADABLE ${scenario}: ${path.join(root, d, "checks.json")}: ${e.message}`); continue; }
      seen.add(scenario);
      for (const c of checks) {
        if (c.status === "SUCCESS") { passed++; continue; }
        if (c.status === "FAILURE") failed++; else if (c.status === "INFO") info++; else other++;
        rows.push(`  ${c.status} ${scenario}/${c.id}: ${c.errorMessage || (c.details && c.details.message) || c.description || ""}`);
      }
    }
    const absent = [...scored].filter(s => !seen.has(s));
    for (const s of absent) rows.push(`  ABSENT ${s}: no checks.json (the scenario did not run)`);
    if (rows.length) { console.log("scored checks that did not succeed:"); console.log(rows.join("\n")); }
    console.log(`counts ${passed} ${failed} ${other} ${absent.length} ${seen.size} ${info}`);
  ' "$1" "$2"
}

# run_suite_2026 DIR URL: run-2026's work; sets RESULT_LINE to the closing
# `conformance 2026-07-28: ...` line, which it leaves to its caller to print;
# returns non-zero if the run failed.
run_suite_2026() {
  local dir=$1 url=$2 out status scored report counts passed failed other absent ran info missing ns ns_run=0 ns_failing=0
  is_uint "$EXPECTED_CHECKS_2026" || die "EXPECTED_CHECKS_2026 must be a number, not $EXPECTED_CHECKS_2026"
  dir=$(abs "$dir")
  launch_suite "$dir" suite2026 "$SUITE2026_VERSION" "$url" --requirements "$REQUIREMENTS_2026"
  out=$SUITE_OUT status=$SUITE_STATUS
  RESULT_LINE="conformance $REQUIREMENTS_2026: 0 passed, $EXPECTED_CHECKS_2026 failed (scored; 0 not-scored scenarios run, 0 failing)"

  # The scored scenarios, as the suite itself lists them for servers.
  scored=$("$NODE" "$(suite_entry "$dir" suite2026)" list --requirements "$REQUIREMENTS_2026" |
    sed -n '/^Server scenarios/,/^$/p' | sed -nE 's/^  - ([^ ]+)$/\1/p') ||
    die "could not list the scenarios $REQUIREMENTS_2026 requires of a server"
  [ -n "$scored" ] || die "the suite listed no server scenarios for --requirements $REQUIREMENTS_2026"

  if ! grep -qE '^Total: [0-9]+ passed, [0-9]+ failed' "$out/suite.txt"; then
    [ "$status" -eq 124 ] && note "the suite did not finish within ${SUITE_TIMEOUT}s"
    note "the suite printed no 'Total:' line (exit status $status); the end of its output:"
    tail -n 30 "$out/suite.txt" >&2 || true
    return 1
  fi
  # "Not scored for 2026-07-28: K scenario(s) run, J failing.", absent when
  # every scenario run was scored.
  ns=$(grep -E "^Not scored for $REQUIREMENTS_2026: [0-9]+ scenario\(s\) run, [0-9]+ failing" "$out/suite.txt" | tail -n 1 || true)
  if [ -n "$ns" ]; then
    ns_run=$(sed -E 's/^[^:]+: ([0-9]+) scenario.*/\1/' <<<"$ns")
    ns_failing=$(sed -E 's/.* run, ([0-9]+) failing.*/\1/' <<<"$ns")
  fi
  grep -E '^  ✗ [^ ]+ \([a-z-]+\)$' "$out/suite.txt" | sed 's/^  ✗ /not-scored scenario failing: /' || true

  report=$(score_2026 "$out/checks" "$scored") || die "could not read the checks under $out/checks"
  grep -v '^counts ' <<<"$report" || true
  counts=$(grep '^counts ' <<<"$report" | tail -n 1)
  read -r _ passed failed other absent ran info <<<"$counts"
  missing=$((EXPECTED_CHECKS_2026 - passed - info - failed))
  [ $missing -lt 0 ] && missing=0
  echo "suite: $ran of $(wc -l <<<"$scored") scored scenarios ran, $passed scored checks passed, $failed failed, $info informational (optional behaviour not shown), $other ended otherwise (expected $EXPECTED_CHECKS_2026 to pass; suite exit status $status)"
  if [ $missing -gt 0 ]; then
    echo "$missing expected scored check(s) did not succeed without failing (WARNING/SKIPPED, or not run); counted as failed below"
  fi
  if [ "$passed" -gt "$EXPECTED_CHECKS_2026" ]; then
    echo "note: more scored checks passed than EXPECTED_CHECKS_2026=$EXPECTED_CHECKS_2026; the suite may have changed"
  fi
  if [ "$failed" -eq 0 ] && [ "$status" -ne 0 ]; then
    echo "the suite exited with status $status though no scored check failed; counted as a failure"
  fi
  RESULT_LINE="conformance $REQUIREMENTS_2026: $((passed + info)) passed, $((failed + missing)) failed (scored, $info of the passed informational; $ns_run not-scored scenarios run, $ns_failing failing)"
  [ "$failed" -eq 0 ] && [ $missing -eq 0 ] && [ "$absent" -eq 0 ] && [ "$status" -eq 0 ]
}

# cmd_run ERA DIR URL: run (ERA 2025) or run-2026 (ERA 2026).
cmd_run() {
  local status=0
  RESULT_LINE=
  suite_for "$1" "$2" "$3" || status=$?
  echo "$RESULT_LINE"
  return $status
}

# suite_for ERA DIR URL: run_suite or run_suite_2026.
suite_for() {
  case "$1" in
    2025) run_suite "$2" "$3" ;;
    2026) run_suite_2026 "$2" "$3" ;;
    *) die "internal: no suite for era $1" ;;
  esac
}

# --- self-test ---------------------------------------------------------------

# cmd_self_test ERA DIR: self-test (ERA 2025) or self-test-2026 (ERA 2026).
cmd_self_test() {
  local era=$1 dir=$2 start=$SECONDS port tries=0 status=0
  dir=$(abs "$dir")
  [ "$era" = 2026 ] && SERVER_STATELESS=true
  cmd_install "$dir"
  SERVER_PID=
  OWN_SERVER=1 # the EXIT trap stops it
  # A port picked free can be taken before the server binds it: try a few.
  while [ -z "$SERVER_PID" ]; do
    tries=$((tries + 1))
    [ $tries -le 3 ] || die "could not start everything-server on a free loopback port"
    port=$(free_port "$dir")
    start_server "$dir" "$port" || true
  done
  note "everything-server (pid $SERVER_PID) on http://127.0.0.1:$port/mcp"
  RESULT_LINE=
  suite_for "$era" "$dir" "http://127.0.0.1:$port/mcp" || status=$?
  stop_pid "$SERVER_PID"
  note "everything-server (pid $SERVER_PID) stopped"
  SERVER_PID=
  echo "self-test$([ "$era" = 2026 ] && echo -2026) took $((SECONDS - start))s"
  echo "$RESULT_LINE"
  return $status
}

# --- through mcpgate ---------------------------------------------------------

# start_mcpgate BIN WORKDIR PORT: starts `BIN serve` on 127.0.0.1:PORT with a
# SQLite database in WORKDIR; sets MCPGATE_PID, or returns 1 if it did not
# come up (its log is WORKDIR/mcpgate.log).
start_mcpgate() {
  local bin=$1 work=$2 port=$3 deadline
  if port_in_use "$port"; then
    note "something already listens on 127.0.0.1:$port"
    return 1
  fi
  : >"$work/empty.env"
  HOST=127.0.0.1 PORT=$port DATABASE_URL="sqlite:///$work/mcpgate.db" AUTH_REQUIRED=false \
    MCPGATE_ENV_FILE="$work/empty.env" LOG_LEVEL=info \
    "$bin" serve </dev/null >"$work/mcpgate.log" 2>&1 &
  MCPGATE_PID=$!
  deadline=$((SECONDS + SERVER_WAIT))
  while ! port_in_use "$port"; do
    if ! kill -0 "$MCPGATE_PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      note "mcpgate did not come up on 127.0.0.1:$port; its log ($work/mcpgate.log):"
      tail -n 20 "$work/mcpgate.log" >&2 || true
      stop_pid "$MCPGATE_PID"
      MCPGATE_PID=
      return 1
    fi
    sleep 0.1
  done
}

# cmd_through_mcpgate ERA DIR MCPGATE: through-mcpgate (ERA 2025) or
# through-mcpgate-2026 (ERA 2026).
cmd_through_mcpgate() {
  local era=$1 dir=$2 bin=$3 start=$SECONDS work server_port gw_port tries=0 status=0 id
  dir=$(abs "$dir")
  [ "$era" = 2026 ] && SERVER_STATELESS=true
  [ -x "$bin" ] || die "$bin is not an executable mcpgate binary (build one with: go build -o mcpgate ./cmd/mcpgate)"
  bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
  cmd_install "$dir"
  work=$(mktemp -d)
  WORK_DIR=$work
  SERVER_PID=
  OWN_SERVER=1
  while [ -z "$SERVER_PID" ]; do
    tries=$((tries + 1))
    [ $tries -le 3 ] || die "could not start everything-server on a free loopback port"
    server_port=$(free_port "$dir")
    start_server "$dir" "$server_port" || true
  done
  tries=0
  MCPGATE_PID=
  while [ -z "$MCPGATE_PID" ]; do
    tries=$((tries + 1))
    [ $tries -le 3 ] || die "could not start mcpgate on a free loopback port"
    gw_port=$(free_port "$dir")
    start_mcpgate "$bin" "$work" "$gw_port" || true
  done
  note "everything-server on 127.0.0.1:$server_port, mcpgate (pid $MCPGATE_PID) on 127.0.0.1:$gw_port"
  NODE=$(node_bin "$dir")
  # Registration through the admin API, as a user would (Node 22 has fetch).
  # shellcheck disable=SC2016 # JavaScript, not shell, in single quotes
  id=$("$NODE" -e '
    const [port, upstream] = process.argv.slice(1);
    fetch(`http://127.0.0.1:${port}/gateways`, {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({name: "everything", url: upstream, transport: "STREAMABLEHTTP"}),
      signal: AbortSignal.timeout(30000),
    }).then(async r => {
      const g = await r.json();
      if (r.status !== 201 || g.status !== "available") {
        console.error(`POST /gateways answered ${r.status}: ${JSON.stringify(g)}`);
        process.exit(1);
      }
      console.log(g.id);
    }).catch(e => { console.error(String(e)); process.exit(1); });
  ' "$gw_port" "http://127.0.0.1:$server_port/mcp") || die "could not register the server with mcpgate"
  RESULT_LINE=
  suite_for "$era" "$dir" "http://127.0.0.1:$gw_port/gateways/$id/mcp" || status=$?
  stop_pid "$MCPGATE_PID"
  MCPGATE_PID=
  stop_pid "$SERVER_PID"
  SERVER_PID=
  if [ $status -ne 0 ]; then
    note "mcpgate's log, last lines:"
    tail -n 30 "$work/mcpgate.log" >&2 || true
  fi
  rm -rf "$work"
  WORK_DIR=
  echo "through mcpgate$([ "$era" = 2026 ] && echo " (2026-07-28)") took $((SECONDS - start))s"
  echo "$RESULT_LINE"
  return $status
}

# --- main --------------------------------------------------------------------

SUITE_PID=
SERVER_PID=
SERVER_STATELESS=false
OWN_SERVER=
MCPGATE_PID=
WORK_DIR=
# Whatever way this script ends, it stops the suite it started, and the server
# it started unless that server is the point (the `server` command).
cleanup() {
  if [ -n "$SUITE_PID" ]; then stop_pid "$SUITE_PID"; fi
  if [ -n "$OWN_SERVER" ] && [ -n "$SERVER_PID" ]; then stop_pid "$SERVER_PID"; fi
  if [ -n "$MCPGATE_PID" ]; then stop_pid "$MCPGATE_PID"; fi
  if [ -n "$WORK_DIR" ]; then rm -rf "$WORK_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

[ $# -ge 1 ] || usage
cmd=$1
shift
case "$cmd" in
  install) [ $# -eq 1 ] || usage; cmd_install "$1" ;;
  everything-command) [ $# -eq 1 ] || usage; cmd_everything_command "$1" ;;
  ts-sdk-dir) [ $# -eq 1 ] || usage; cmd_ts_sdk_dir "$1" ;;
  ts-sdk2-dir) [ $# -eq 1 ] || usage; cmd_ts_sdk2_dir "$1" ;;
  server) [ $# -eq 2 ] || usage; cmd_server "$1" "$2" ;;
  run) [ $# -eq 2 ] || usage; cmd_run 2025 "$1" "$2" ;;
  run-2026) [ $# -eq 2 ] || usage; cmd_run 2026 "$1" "$2" ;;
  self-test) [ $# -eq 1 ] || usage; cmd_self_test 2025 "$1" ;;
  self-test-2026) [ $# -eq 1 ] || usage; cmd_self_test 2026 "$1" ;;
  through-mcpgate) [ $# -eq 2 ] || usage; cmd_through_mcpgate 2025 "$1" "$2" ;;
  through-mcpgate-2026) [ $# -eq 2 ] || usage; cmd_through_mcpgate 2026 "$1" "$2" ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac
