#!/usr/bin/env bash
# Ensures a FerretDB binary (SQLite backend) exists at <repo>/.tools/bin/ferretdb for the MongoStore tests.
# Idempotent: does nothing when a working binary is already there.
#
# Why not plain `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`: that build lacks the generated
# build/version/version.txt, and the binary panics at start ("Invalid build/version/version.txt file content").
# So we copy the module source out of the Go module cache, write version.txt, and `go build` from there.
set -euo pipefail

FERRETDB_VERSION="${FERRETDB_VERSION:-v1.24.2}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="$REPO/.tools/bin"
BIN="$BIN_DIR/ferretdb"

if [[ -x "$BIN" ]] && "$BIN" --version >/dev/null 2>&1; then
  echo "ferretdb: $BIN already present ($("$BIN" --version 2>&1 | grep -m1 -i 'version' || true))"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "ferretdb: 'go' is not on PATH; install Go >= 1.21 to build FerretDB $FERRETDB_VERSION" >&2
  exit 1
fi

SRC="$(mktemp -d "${TMPDIR:-/tmp}/ferretdb-src.XXXXXX")"
trap 'chmod -R u+w "$SRC" 2>/dev/null || true; rm -rf "$SRC"' EXIT

echo "ferretdb: downloading github.com/FerretDB/FerretDB@$FERRETDB_VERSION through the Go module proxy"
# Run from the empty temp dir so no surrounding go.mod is involved.
MOD_DIR="$(cd "$SRC" && go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
if [[ -z "$MOD_DIR" || ! -d "$MOD_DIR" ]]; then
  echo "ferretdb: could not locate the downloaded module source" >&2
  exit 1
fi

echo "ferretdb: copying module source to $SRC"
cp -R "$MOD_DIR/." "$SRC/"
chmod -R u+w "$SRC"
echo "$FERRETDB_VERSION" >"$SRC/build/version/version.txt"

mkdir -p "$BIN_DIR"
echo "ferretdb: building $BIN (about a minute on a cold cache)"
(cd "$SRC" && go build -trimpath -buildvcs=false -o "$BIN.tmp" ./cmd/ferretdb)
mv "$BIN.tmp" "$BIN"

"$BIN" --version >/dev/null
echo "ferretdb: installed $BIN"
