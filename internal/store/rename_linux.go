//go:build linux

package store

import (
	"errors"

	"golang.org/x/sys/unix"
)

// renameNoReplace renames from to to, failing with an error wrapping
// fs.ErrExist if to exists: renameat2(RENAME_NOREPLACE) does it in one step;
// file systems without it get the link-then-unlink fallback.
func renameNoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
		return linkRename(from, to)
	}
	if err != nil {
		return &linkError{op: "rename", from: from, to: to, err: err}
	}
	return nil
}
