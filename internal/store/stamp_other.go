//go:build !linux

package store

import "io/fs"

// sysStamp has nothing beyond size and mtime to offer on this platform.
func sysStamp(fs.FileInfo) (ctimeNS int64, inode, dev uint64) { return 0, 0, 0 }
