package cell

// DefaultPoolMax on iOS: 1024 cells, 514 KiB. Network extensions live
// within tens of megabytes in total.
const DefaultPoolMax = 1024
