#!/usr/bin/env bash
# Builds the native TensorFlow backend of TF.js (@tensorflow/tfjs-node 4.22.0) without its libtensorflow
# download, against the TensorFlow C library inside the PyPI wheel `tensorflow-cpu` 2.21.0, into a private
# prefix. Not part of `npm ci`: the project's node_modules is never touched. Load the result with
#   TRIBUTARY_TFJS_NODE_DIR=<prefix>   (selectBackend('tensorflow' | 'auto') then requires it from there)
#
# Usage: scripts/native-tf.sh [--gpu] [PREFIX]      (PREFIX default: .native in the repository root)
#   --gpu   builds @tensorflow/tfjs-node-gpu against the `tensorflow` wheel (CUDA build) instead; it needs a
#           Linux machine with an NVIDIA driver and the CUDA/cuDNN libraries that wheel was built for
#           (`pip install tensorflow[and-cuda]==<version>` provides them). Untested here: no GPU.
# Env: TF_WHEEL_VERSION (default 2.21.0), PIP (default: pip3, else python3 -m pip).
#
# Steps, each skipped when its result is already there (the script is idempotent):
#   1. pip download the wheel (--no-deps --only-binary=:all:) into PREFIX/wheels;
#   2. extract only libtensorflow_cc.so.2, libtensorflow_framework.so.2 and the include tree into
#      PREFIX/libtensorflow-<version>-<cpu|gpu>/{lib,include};
#   3. npm install the package with --ignore-scripts into PREFIX (its own package.json, pinned version);
#   4. lay out the package's deps/include and deps/lib with the names its binding.gyp links (-ltensorflow,
#      -ltensorflow_framework) and its install script checks (libtensorflow.so.2.9.1, whose presence skips
#      the download), all symlinks to the wheel's libraries;
#   5. npm rebuild --build-from-source (node-gyp against this Node's headers);
#   6. links the prefix's tfjs-core, tfjs-backend-cpu and tfjs-layers to the project's (same versions), so
#      one copy of each runs;
#   7. loads the addon and prints the backend name and the libtensorflow version it reports.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VARIANT=cpu
PREFIX=""
for arg in "$@"; do
  case "$arg" in
    --gpu) VARIANT=gpu ;;
    -h | --help)
      sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "native-tf: unknown option $arg (expected --gpu, --help or a prefix directory)" >&2
      exit 2
      ;;
    *) PREFIX="$arg" ;;
  esac
done
PREFIX="${PREFIX:-$ROOT/.native}"
mkdir -p "$PREFIX"
PREFIX="$(cd "$PREFIX" && pwd)"

TF_VERSION="${TF_WHEEL_VERSION:-2.21.0}"
TFJS_VERSION=4.22.0
# The version tfjs-node's install script hard-codes; a file of this name in deps/lib means "already downloaded".
TFJS_LIBTF_NAME_VERSION=2.9.1
if [ "$VARIANT" = gpu ]; then
  WHEEL_NAME=tensorflow
  NPM_PACKAGE=@tensorflow/tfjs-node-gpu
else
  WHEEL_NAME=tensorflow-cpu
  NPM_PACKAGE=@tensorflow/tfjs-node
fi
PACKAGE_DIR="$PREFIX/node_modules/$NPM_PACKAGE"
# Packages the prefix takes from the project instead of its own copies (step 6).
SHARED_PACKAGES="tfjs-core tfjs-backend-cpu tfjs-layers"
LIBTF_DIR="$PREFIX/libtensorflow-$TF_VERSION-$VARIANT"

if command -v pip3 >/dev/null 2>&1; then PIP="${PIP:-pip3}"; else PIP="${PIP:-python3 -m pip}"; fi
command -v python3 >/dev/null 2>&1 || {
  echo "native-tf: python3 is needed (pip downloads the wheel, zipfile extracts it)" >&2
  exit 1
}

log() { echo "== native-tf: $*"; }

# Prints "<backend> <libtensorflow version>" if the addon in PREFIX loads, else fails.
probe() {
  (cd "$PREFIX" && node -e '
    const tf = require(process.argv[1]);
    const backend = tf.getBackend();
    const version = tf.backend().binding.TF_Version;
    // A real computation, so a half-working addon cannot pass: [[1,2],[3,4]]·[[5],[6]] = [[17],[39]].
    const product = Array.from(tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5], [6]])).dataSync());
    if (backend !== "tensorflow" || product.join() !== "17,39") {
      throw new Error(`backend ${backend}, product ${product}`);
    }
    console.log(`${backend} ${version}`);
  ' "$PACKAGE_DIR" 2>/dev/null | tail -n 1)
}

if [ -d "$PACKAGE_DIR/lib" ] && loaded="$(probe)" && [ -n "$loaded" ]; then
  log "already built in $PREFIX"
else
  # 1. The wheel.
  mkdir -p "$PREFIX/wheels"
  wheel_glob="${WHEEL_NAME//-/_}-$TF_VERSION-*.whl"
  # shellcheck disable=SC2086
  wheel="$(ls "$PREFIX"/wheels/$wheel_glob 2>/dev/null | head -n 1 || true)"
  if [ -z "$wheel" ]; then
    log "downloading $WHEEL_NAME==$TF_VERSION from PyPI"
    $PIP download "$WHEEL_NAME==$TF_VERSION" --no-deps --only-binary=:all: -d "$PREFIX/wheels"
    # shellcheck disable=SC2086
    wheel="$(ls "$PREFIX"/wheels/$wheel_glob | head -n 1)"
  fi

  # 2. The C library and headers out of it.
  if [ ! -f "$LIBTF_DIR/.complete" ]; then
    log "extracting libtensorflow and headers from $(basename "$wheel")"
    rm -rf "$LIBTF_DIR"
    python3 - "$wheel" "$LIBTF_DIR" <<'PY'
import os, shutil, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
libs = {'tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2'}
os.makedirs(os.path.join(out, 'lib'))
with zipfile.ZipFile(wheel) as z:
    missing = libs - set(z.namelist())
    if missing:
        sys.exit(f'native-tf: the wheel lacks {sorted(missing)}')
    for info in z.infolist():
        name = info.filename
        if name in libs:
            target = os.path.join(out, 'lib', os.path.basename(name))
        elif name.startswith('tensorflow/include/') and not name.endswith('/'):
            target = os.path.join(out, 'include', name[len('tensorflow/include/'):])
        else:
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(info) as src, open(target, 'wb') as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
    touch "$LIBTF_DIR/.complete"
  fi

  # 3. The npm package, without its install script (which would download libtensorflow).
  # Both variants can live in one prefix ('auto' tries the GPU one first): keep the other if it is built.
  deps="\"$NPM_PACKAGE\": \"$TFJS_VERSION\""
  for other in @tensorflow/tfjs-node @tensorflow/tfjs-node-gpu; do
    if [ "$other" != "$NPM_PACKAGE" ] && [ -d "$PREFIX/node_modules/$other/lib" ]; then
      deps="$deps, \"$other\": \"$TFJS_VERSION\""
    fi
  done
  printf '{\n  "name": "tributary-native-tensorflow",\n  "private": true,\n  "dependencies": { %s }\n}\n' "$deps" \
    >"$PREFIX/package.json"
  # npm never sees the links into the project (step 6): with them in place it half-rebuilds those folders.
  for shared in $SHARED_PACKAGES; do
    if [ -L "$PREFIX/node_modules/@tensorflow/$shared" ]; then rm "$PREFIX/node_modules/@tensorflow/$shared"; fi
  done
  log "npm install $NPM_PACKAGE@$TFJS_VERSION --ignore-scripts in $PREFIX"
  (cd "$PREFIX" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error)
  # 4. deps/include and deps/lib as binding.gyp and scripts/install.js expect them.
  mkdir -p "$PACKAGE_DIR/deps/lib"
  ln -sfn "$LIBTF_DIR/include" "$PACKAGE_DIR/deps/include"
  for name in libtensorflow_cc.so.2 libtensorflow.so "libtensorflow.so.$TFJS_LIBTF_NAME_VERSION"; do
    ln -sfn "$LIBTF_DIR/lib/libtensorflow_cc.so.2" "$PACKAGE_DIR/deps/lib/$name"
  done
  for name in libtensorflow_framework.so.2 libtensorflow_framework.so "libtensorflow_framework.so.$TFJS_LIBTF_NAME_VERSION"; do
    ln -sfn "$LIBTF_DIR/lib/libtensorflow_framework.so.2" "$PACKAGE_DIR/deps/lib/$name"
  done

  # 5. The addon, compiled here. node-gyp takes the headers of the running Node when they are installed
  # beside it (no download from nodejs.org).
  nodedir="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
  nodedir_flag=()
  if [ -f "$nodedir/include/node/node_api.h" ]; then nodedir_flag=(--nodedir="$nodedir"); fi
  log "compiling the addon (npm rebuild --build-from-source)"
  # --build-from-source as npm passes it to node-pre-gyp (npm 11 warns that it does not know the key; harmless).
  (cd "$PREFIX" && npm_config_build_from_source=true npm rebuild "$NPM_PACKAGE" "${nodedir_flag[@]}" --no-audit --no-fund)
  # 6. One tfjs-core, cpu backend and layers in the process: the package's own copies would register every
  # cpu kernel a second time (a warning each, and the stock kernels back over ours). Same versions only; the
  # links point into the project's node_modules and nothing is ever written through them.
  for shared in $SHARED_PACKAGES; do
    ours="$ROOT/node_modules/@tensorflow/$shared"
    theirs="$PREFIX/node_modules/@tensorflow/$shared"
    [ -f "$ours/package.json" ] && [ -f "$theirs/package.json" ] && [ ! -L "$theirs" ] || continue
    version_of() { node -p "require('$1/package.json').version"; }
    if [ "$(version_of "$ours")" = "$(version_of "$theirs")" ]; then
      rm -rf "$theirs"
      ln -s "$(readlink -f "$ours")" "$theirs"
    else
      echo "native-tf: @tensorflow/$shared differs from the project's; keeping the package's copy" >&2
    fi
  done
  loaded="$(probe)" || true
  if [ -z "$loaded" ]; then
    echo "native-tf: the addon was built but does not load; run: node -e \"require('$PACKAGE_DIR')\"" >&2
    exit 1
  fi
fi

# 7. What loaded.
log "backend $(cut -d' ' -f1 <<<"$loaded"), libtensorflow $(cut -d' ' -f2 <<<"$loaded") ($NPM_PACKAGE $TFJS_VERSION)"
echo "export TRIBUTARY_TFJS_NODE_DIR=$PREFIX"
