#!/bin/sh
# Make packaging/macos/odt-studio.icns from the 256 px PNG (run on macOS: sips and iconutil).
# A copy made with Pillow is already committed; re-run this when the icon changes, ideally from
# a 1024 px rendering of resources/icons/odt-studio.svg (e.g. `rsvg-convert -w 1024`).
set -eu
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SRC="${1:-$ROOT/resources/icons/odt-studio.png}"
SET="$(mktemp -d)/odt-studio.iconset"
mkdir -p "$SET"
for s in 16 32 128 256 512; do
    sips -z $s $s "$SRC" --out "$SET/icon_${s}x${s}.png" >/dev/null
    d=$((s * 2))
    sips -z $d $d "$SRC" --out "$SET/icon_${s}x${s}@2x.png" >/dev/null
done
iconutil -c icns "$SET" -o "$ROOT/packaging/macos/odt-studio.icns"
echo "wrote $ROOT/packaging/macos/odt-studio.icns"
