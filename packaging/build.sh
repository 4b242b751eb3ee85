#!/usr/bin/env bash
# Build the ODT Studio standalone bundle (PyInstaller, one folder) and the Debian package.
#
#   packaging/build.sh [--check] [--skip-build] [--from-head] [--python PY]
#
#   (default)     PyInstaller bundle -> dist/odt-studio/, then dist/odt-studio_<ver>_<arch>.deb
#   --check       afterwards run the smoke test: the bundle's --self-test (headless, clean
#                 environment), dpkg -i, /usr/bin/odt-studio --self-test, desktop entry and MIME
#                 association, launch-to-window time under Xvfb (first and second launch, user
#                 folders written), dpkg -r, nothing left in /opt/odt-studio. Needs root (dpkg),
#                 xvfb-run and xdotool for the window timing (skipped with a note if absent).
#   --skip-build  reuse dist/odt-studio/ (only make the .deb and/or run --check)
#   --from-head   build from a clean export of git HEAD (`git archive`, read-only for git)
#                 instead of the working tree
#   --python PY   interpreter with the project's dependencies (default: .venv/bin/python)
#
# Environment: ODT_STUDIO_LEAN=0 builds without the size cuts of the spec (to measure them).
# Timings and sizes are written to dist/build-report.txt. The build takes ~5-10 min on 2 cores;
# run it in the background with a log:  nohup packaging/build.sh --check > build/build.log 2>&1 &
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHECK=0; SKIP_BUILD=0; FROM_HEAD=0; PY="$ROOT/.venv/bin/python"
while [ $# -gt 0 ]; do
    case "$1" in
        --check) CHECK=1 ;;
        --skip-build) SKIP_BUILD=1 ;;
        --from-head) FROM_HEAD=1 ;;
        --python) PY="$2"; shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done

DIST="$ROOT/dist"
BUILD="$ROOT/build"
BUNDLE="$DIST/odt-studio"
REPORT="$DIST/build-report.txt"
mkdir -p "$DIST" "$BUILD"

log() { echo "[build.sh $(date -u +%H:%M:%S)] $*" >&2; }
say() { echo "$*" | tee -a "$REPORT"; }
die() { echo "FAILED: $*" | tee -a "$REPORT" >&2; exit 1; }

VERSION="$("$PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); from engine import __version__; print(__version__)' "$ROOT")"
ARCH="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
DEB="$DIST/odt-studio_${VERSION}_${ARCH}.deb"

# ------------------------------------------------------------------------------- bundle
: > "$REPORT"
say "ODT Studio $VERSION packaging on $(uname -srm), $(nproc) CPU(s), $(date -u '+%Y-%m-%d %H:%M UTC')"
if [ "$SKIP_BUILD" = 0 ]; then
    if ! "$PY" -c 'import PyInstaller' 2>/dev/null; then
        log "installing PyInstaller into $("$PY" -c 'import sys; print(sys.prefix)')"
        "$PY" -m pip install -q "pyinstaller>=6.5"   # never reinstalls torch
    fi
    SRC="$ROOT"
    if [ "$FROM_HEAD" = 1 ]; then
        SRC="$BUILD/clean-checkout"
        rm -rf "$SRC"; mkdir -p "$SRC"
        git -C "$ROOT" archive --format=tar HEAD | tar -x -C "$SRC"
        log "clean export of $(git -C "$ROOT" rev-parse --short HEAD) in $SRC"
    fi
    [ -f "$SRC/packaging/odt-studio.spec" ] || die "no packaging/odt-studio.spec in $SRC"
    rm -rf "$BUNDLE"
    log "PyInstaller (log: $BUILD/pyinstaller.log)"
    t0=$(date +%s)
    (cd "$SRC" && "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
        --distpath "$DIST" --workpath "$BUILD/pyinstaller" packaging/odt-studio.spec) \
        > "$BUILD/pyinstaller.log" 2>&1 || { tail -30 "$BUILD/pyinstaller.log" >&2; die "PyInstaller"; }
    t1=$(date +%s)
    say "bundle build time: $((t1 - t0)) s (lean=${ODT_STUDIO_LEAN:-1})"
fi
[ -x "$BUNDLE/odt-studio" ] || die "no bundle at $BUNDLE (build it first)"
say "bundle size: $(du -sm "$BUNDLE" | cut -f1) MB ($(find "$BUNDLE" -type f | wc -l) files)"
say "largest folders (MB):"
du -sm "$BUNDLE"/_internal/* 2>/dev/null | sort -rn | head -12 | sed 's/^/    /' | tee -a "$REPORT"

# ------------------------------------------------------------------------------- .deb
log "Debian package"
t0=$(date +%s)
STAGE="$BUILD/deb/root"
rm -rf "$BUILD/deb"; mkdir -p "$STAGE/DEBIAN" "$STAGE/opt" "$STAGE/usr/bin" \
    "$STAGE/usr/share/applications" "$STAGE/usr/share/mime/packages" \
    "$STAGE/usr/share/icons/hicolor/256x256/apps" "$STAGE/usr/share/icons/hicolor/scalable/apps" \
    "$STAGE/usr/share/doc/odt-studio"
cp -al "$BUNDLE" "$STAGE/opt/odt-studio" 2>/dev/null || cp -a "$BUNDLE" "$STAGE/opt/odt-studio"
install -m 755 "$ROOT/packaging/linux/launcher.sh" "$STAGE/usr/bin/odt-studio"
install -m 644 "$ROOT/resources/odt-studio.desktop" "$STAGE/usr/share/applications/odt-studio.desktop"
install -m 644 "$ROOT/packaging/linux/odt-studio-mime.xml" "$STAGE/usr/share/mime/packages/odt-studio.xml"
install -m 644 "$ROOT/resources/icons/odt-studio.png" "$STAGE/usr/share/icons/hicolor/256x256/apps/odt-studio.png"
install -m 644 "$ROOT/resources/icons/odt-studio.svg" "$STAGE/usr/share/icons/hicolor/scalable/apps/odt-studio.svg"
printf 'ODT Studio %s, MIT licence. Bundled third-party licences are in /opt/odt-studio/_internal/*.dist-info.\n' \
    "$VERSION" > "$STAGE/usr/share/doc/odt-studio/copyright"
for s in postinst prerm postrm; do install -m 755 "$ROOT/packaging/linux/$s" "$STAGE/DEBIAN/$s"; done
SIZE_KB=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@INSTALLED_SIZE@/$SIZE_KB/" \
    "$ROOT/packaging/linux/control.in" > "$STAGE/DEBIAN/control"
if command -v desktop-file-validate >/dev/null 2>&1; then
    desktop-file-validate "$STAGE/usr/share/applications/odt-studio.desktop" || die "desktop-file-validate"
fi
rm -f "$DEB"
dpkg-deb --root-owner-group -Zzstd -z3 --build "$STAGE" "$DEB" >/dev/null
rm -rf "$BUILD/deb"
t1=$(date +%s)
say ".deb: $(basename "$DEB") $(du -m "$DEB" | cut -f1) MB, built in $((t1 - t0)) s"

[ "$CHECK" = 1 ] || { log "done (no --check)"; exit 0; }

# ------------------------------------------------------------------------------- smoke test
say "--- smoke test ---"
TMPH="$(mktemp -d /tmp/odt-studio-check.XXXXXX)"
trap 'rm -rf "$TMPH"' EXIT

# Runs a command with a clean environment (no venv, no PYTHON*), a fresh HOME and offscreen Qt.
clean_run() {
    local home="$1"; shift
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="$home" \
        LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen "$@"
}

self_test() {  # $1 label, $2 executable
    local out rc=0 t0 t1 home="$TMPH/home-$1"
    mkdir -p "$home"
    t0=$(date +%s.%N)
    out="$(clean_run "$home" "$2" --self-test 2>"$TMPH/$1.err")" || rc=$?
    t1=$(date +%s.%N)
    sed 's/^/    /' "$TMPH/$1.err" | tee -a "$REPORT"
    if [ "$rc" = 0 ] && [ "$(echo "$out" | tail -1)" = "OK" ]; then
        say "self-test ($1): OK in $(echo "$t1 - $t0" | bc) s"
    else
        die "self-test ($1): exit $rc, stdout '$out'"
    fi
}

# 1. the bundle, with no Python on PATH and no environment from the build
# (a library that ldd cannot resolve alone but that the bundle holds is found at run time)
missing=""
for lib in $(find "$BUNDLE" -name '*.so*' -type f -print0 | xargs -0 -n 50 ldd 2>/dev/null \
        | awk '/not found/ {print $1}' | sort -u); do
    [ -n "$(find "$BUNDLE" -name "$lib" -print -quit)" ] || missing="$missing $lib"
done
[ -z "$missing" ] || say "libraries neither bundled nor on this system (optional plugins: GTK theme, Wayland):$missing"
leaks="$(find "$BUNDLE" -name '*.so*' -type f -print0 | xargs -0 -n 50 ldd 2>/dev/null \
    | grep -E "$ROOT/.venv|site-packages" | sort -u || true)"
[ -z "$leaks" ] || die "bundle links against the build venv: $leaks"
self_test bundle "$BUNDLE/odt-studio"

# 2. install the package
if dpkg-query -W -f='${Status}' odt-studio 2>/dev/null | grep -q ' installed$'; then dpkg -r odt-studio >/dev/null; fi
dpkg -i "$DEB" >/dev/null || die "dpkg -i"
say "dpkg -i: installed $(dpkg-query -W -f='${Package} ${Version}' odt-studio)"
[ -x /usr/bin/odt-studio ] || die "no /usr/bin/odt-studio"
self_test installed /usr/bin/odt-studio
if command -v desktop-file-validate >/dev/null 2>&1; then
    desktop-file-validate /usr/share/applications/odt-studio.desktop || die "installed desktop entry invalid"
    say "desktop entry: valid"
fi
grep -q 'application/x-odt-result:\*\.odt\.h5' /usr/share/mime/globs2 2>/dev/null \
    && say "MIME: *.odt.h5 -> application/x-odt-result registered" || say "MIME: not registered (update-mime-database missing?)"
grep -q '^application/x-odt-result=.*odt-studio.desktop' /usr/share/applications/mimeinfo.cache 2>/dev/null \
    && say "MIME: application/x-odt-result opens with odt-studio.desktop" || say "MIME: no mimeinfo.cache entry (update-desktop-database missing?)"

# 3. time from launch to a shown window (Xvfb + xdotool), first and second launch
window_time() {  # $1 home; prints seconds, "died" or "timeout"
    GUI_HOME="$1" xvfb-run -a -s "-screen 0 1600x1000x24" bash -c '
        t0=$(date +%s.%N)
        env -i PATH=/usr/bin:/bin HOME="$GUI_HOME" LANG=C.UTF-8 DISPLAY="$DISPLAY" \
            XAUTHORITY="$XAUTHORITY" /usr/bin/odt-studio >>"$GUI_HOME/gui.log" 2>&1 &
        pid=$!
        result=timeout
        for i in $(seq 1800); do      # up to ~3 min
            if xdotool search --onlyvisible --name "ODT Studio" >/dev/null 2>&1; then
                t1=$(date +%s.%N); result=$(echo "$t1 - $t0" | bc); break
            fi
            kill -0 $pid 2>/dev/null || { result=died; break; }
            sleep 0.1
        done
        echo "$result"
        [ "$result" = died ] && exit 0
        # first launch simulates the demo measurement: wait (up to 3 min) until it is written
        for i in $(seq 360); do
            [ -n "$(find "$GUI_HOME/.local/share/odt-studio/demo" -name measurement.json 2>/dev/null)" ] && break
            sleep 0.5
        done
        sleep 3                       # let the window show it and settings be written
        kill -INT $pid 2>/dev/null    # the app closes its window on SIGINT
        for i in $(seq 60); do kill -0 $pid 2>/dev/null || break; sleep 0.5; done
        if kill -0 $pid 2>/dev/null; then echo "(no clean exit within 30 s)" >&2; kill -9 $pid; fi
        wait $pid 2>/dev/null || true'
}
if command -v xvfb-run >/dev/null 2>&1 && command -v xdotool >/dev/null 2>&1; then
    GH="$TMPH/gui-home"; mkdir -p "$GH"
    first="$(window_time "$GH")"
    second="$(window_time "$GH")"
    say "launch to shown window (Xvfb, installed package): first launch ${first} s, second launch ${second} s"
    case "$first" in timeout|died) false ;; esac || { sed 's/^/    /' "$GH/gui.log" | tail -20 | tee -a "$REPORT"; die "no window shown (${first})"; }
    logs="$(find "$GH/.local/state/odt-studio" -type f 2>/dev/null | head -3)"
    demo="$(find "$GH/.local/share/odt-studio/demo" -name measurement.json 2>/dev/null | head -1)"
    conf="$(find "$GH/.config" -type f 2>/dev/null | head -3)"
    say "user folders after first launch: logs=[${logs:-none}] demo=[${demo:-none}] settings=[${conf:-none}]"
    [ -n "$logs" ] || die "no log file in ~/.local/state/odt-studio"
    [ -n "$demo" ] || die "first launch did not write the demo measurement under ~/.local/share/odt-studio/demo"
    say "first launch: window shown, demo measurement simulated, log and settings in the user's folders"
else
    say "launch-to-window time: skipped (install xvfb and xdotool)"
fi

# 4. uninstall
dpkg -r odt-studio >/dev/null || die "dpkg -r"
left="$(ls -A /opt/odt-studio 2>/dev/null || true)"
[ ! -e /opt/odt-studio ] || die "/opt/odt-studio still exists after dpkg -r: ${left:-empty}"
[ ! -e /usr/bin/odt-studio ] || die "/usr/bin/odt-studio still exists after dpkg -r"
[ ! -e /usr/share/applications/odt-studio.desktop ] || die "desktop entry left after dpkg -r"
say "dpkg -r: removed, nothing left in /opt/odt-studio"
dpkg -P odt-studio >/dev/null 2>&1 || true   # forget the package's maintainer scripts too
say "smoke test: all passed"
