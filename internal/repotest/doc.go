// Package repotest holds repository-wide tests that keep the tree honest:
// one package doc per package, dependencies pointing down the layers that
// DEVELOPERS.md describes, and pure packages free of I/O imports.
//
// It contains no code used by the product.
package repotest
