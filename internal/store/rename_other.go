//go:build !linux

package store

// renameNoReplace renames from to to, failing with an error wrapping
// fs.ErrExist if to exists.
func renameNoReplace(from, to string) error { return linkRename(from, to) }
