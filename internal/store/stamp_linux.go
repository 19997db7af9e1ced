//go:build linux

package store

import (
	"io/fs"
	"syscall"
)

// sysStamp returns the change time, inode and device of fi, or zeros when
// the platform does not say.
func sysStamp(fi fs.FileInfo) (ctimeNS int64, inode, dev uint64) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, 0
	}
	return st.Ctim.Nano(), uint64(st.Ino), uint64(st.Dev)
}
