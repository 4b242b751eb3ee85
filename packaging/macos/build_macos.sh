#!/bin/sh
# Build "dist/ODT Studio.app" (and a .dmg) on macOS. Not buildable on the Linux build machine.
# The BUNDLE section of packaging/odt-studio.spec sets the icon, NSHighResolutionCapable and the
# *.odt.h5 document type (CFBundleDocumentTypes + an exported UTI).
set -eu
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
cd "$ROOT"
"$PY" -m PyInstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller packaging/odt-studio.spec
"dist/ODT Studio.app/Contents/MacOS/odt-studio" --self-test
# optional signing/notarisation: codesign --deep --force --options runtime -s "Developer ID Application: ..." "dist/ODT Studio.app"
hdiutil create -volname "ODT Studio" -srcfolder "dist/ODT Studio.app" -ov -format UDZO dist/odt-studio-macos.dmg
