#!/usr/bin/env bash
# Builds onionlite.aar (the gomobile binding of ./mobile for Android) into
# mobile/android/sample/app/libs/, where the sample app picks it up.
#
# Needs: Go 1.26, the Android SDK (ANDROID_HOME, with a platform) and NDK
# (ANDROID_NDK_HOME), and a JDK. It cannot run on the machine onionlite is
# developed on (no NDK there): see mobile/android/README.md.
#
# usage: mobile/android/build.sh [-o OUT.aar]   (ANDROID_TARGETS=android/arm64,... to narrow)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

out=mobile/android/sample/app/libs/onionlite.aar
case "${1:-}" in
-o) out=$2 ;;
"") ;;
*) die "usage: $0 [-o OUT.aar]" ;;
esac

need_go
command -v javac >/dev/null 2>&1 || die "javac not found: gomobile compiles the Java classes (install a JDK 17)"
sdk=${ANDROID_HOME:-${ANDROID_SDK_ROOT:-$HOME/Android/Sdk}}
[ -d "$sdk/platforms" ] || die "no Android SDK at $sdk (set ANDROID_HOME; it needs platforms/android-NN)"
ndk=${ANDROID_NDK_HOME:-}
if [ -z "$ndk" ] && [ -d "$sdk/ndk" ]; then
	ndk=$(find "$sdk/ndk" -mindepth 1 -maxdepth 1 -type d | sort -V | tail -1)
fi
[ -n "$ndk" ] && [ -f "$ndk/meta/platforms.json" ] ||
	die "no usable Android NDK (set ANDROID_NDK_HOME to an NDK r23 or newer; sdkmanager 'ndk;26.3.11579264')"
export ANDROID_HOME=$sdk ANDROID_NDK_HOME=$ndk

# gomobile runs the gobind found on PATH: put the version go.mod pins there.
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/gobind" golang.org/x/mobile/cmd/gobind
export PATH="$bin:$PATH"

mkdir -p "$(dirname "$out")"
note "gomobile bind -target=${ANDROID_TARGETS:-android} -androidapi 21 -> $out"
go tool gomobile bind -target="${ANDROID_TARGETS:-android}" -androidapi 21 -trimpath -ldflags="-s -w" \
	-o "$out" ./mobile
ls -l "$out" >&2
