//go:build !unix

package store

// oNoFollow is unavailable here; openRegular's Lstat check is all we have.
const oNoFollow = 0
