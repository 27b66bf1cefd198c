package cell

// DefaultPoolMax on Android: 2048 cells, about 1 MiB.
const DefaultPoolMax = 2048
