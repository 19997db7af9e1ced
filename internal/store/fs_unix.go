//go:build unix

package store

import "syscall"

// oNoFollow makes an open fail on a symbolic link instead of following it,
// so a link planted at a download's path cannot redirect our writes.
const oNoFollow = syscall.O_NOFOLLOW
