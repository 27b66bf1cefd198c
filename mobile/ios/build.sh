#!/usr/bin/env bash
# Builds Onionlite.xcframework (the gomobile binding of ./mobile for iOS
# devices and simulators) into mobile/ios/, where the sample project
# (mobile/ios/Sample/project.yml) picks it up.
#
# Needs macOS with Xcode (xcodebuild, the iOS SDKs) and Go 1.26. It cannot
# run on the machine onionlite is developed on (Linux, no Xcode): see
# mobile/ios/README.md.
#
# usage: mobile/ios/build.sh [-o OUT.xcframework]   (IOS_TARGETS=ios,iossimulator,maccatalyst to change)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

out=mobile/ios/Onionlite.xcframework
case "${1:-}" in
-o) out=$2 ;;
"") ;;
*) die "usage: $0 [-o OUT.xcframework]" ;;
esac
case $out in *.xcframework) ;; *) die "the output must end in .xcframework" ;; esac

need_go
[ "$(uname -s)" = Darwin ] && command -v xcodebuild >/dev/null 2>&1 ||
	die "gomobile bind -target=ios needs macOS with Xcode (xcodebuild not found)"

# gomobile runs the gobind found on PATH: put the version go.mod pins there.
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/gobind" golang.org/x/mobile/cmd/gobind
export PATH="$bin:$PATH"

rm -rf "$out"
note "gomobile bind -target=${IOS_TARGETS:-ios,iossimulator} -> $out"
go tool gomobile bind -target="${IOS_TARGETS:-ios,iossimulator}" -iosversion 13.0 -trimpath -ldflags="-s -w" \
	-o "$out" ./mobile
du -sh "$out" >&2
