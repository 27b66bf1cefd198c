//go:build !ios && !android

package cell

// DefaultPoolMax on desktop and server platforms: 8192 cells, about
// 4 MiB.
const DefaultPoolMax = 8192
