package store

import (
	"fmt"
	"os"
)

// linkRename moves from to to without ever replacing a file at to: a hard
// link fails if to exists, then from is removed. Where hard links are not
// supported either, it checks and renames, which leaves a short race.
func linkRename(from, to string) error {
	err := os.Link(from, to)
	if err == nil {
		return os.Remove(from)
	}
	if os.IsExist(err) {
		return &linkError{op: "rename", from: from, to: to, err: err}
	}
	if _, lerr := os.Lstat(to); lerr == nil {
		return &linkError{op: "rename", from: from, to: to, err: os.ErrExist}
	}
	return os.Rename(from, to)
}

// linkError is os.LinkError without the repetition: errors.Is(err,
// fs.ErrExist) still works through Unwrap.
type linkError struct {
	op, from, to string
	err          error
}

func (e *linkError) Error() string {
	return fmt.Sprintf("%s %s to %s: %v", e.op, e.from, e.to, e.err)
}

func (e *linkError) Unwrap() error { return e.err }
