// Package tuning holds the badger/v4 options dircache opens its database
// with, so that dircache and its measurement program (cachebench) use the
// same ones. docs/dircache.md gives the measured effect of each choice.
//
// It is only the option set: it opens nothing and stores nothing.
package tuning
