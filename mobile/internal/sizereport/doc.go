// Command sizereport measures what the mobile facade costs an app: it
// links a stand-in for the gomobile library (a program that keeps every
// exported symbol of package mobile alive) with CGO_ENABLED=0 for
// android/arm64 and for darwin/arm64 (standing in for ios/arm64, which Go
// cannot link without Xcode), reports the stripped and gzip -9 sizes
// against the goals, and splits the bytes by dependency from the symbol
// tables of unstripped builds. It writes docs/size.md through
// scripts/mobile-size.
//
// It is not a test and not part of the product; the numbers are estimates
// (see the report's notes), not the size of a real .aar or .xcframework.
package main
