// Package store keeps p2pcdn files on disk: it serves pieces of seeded files
// (refusing once a file changes), writes verified pieces of downloads with
// resume and an atomic finish, and caches hashes so unchanged files are not
// read again. Everything here is safe for concurrent use.
package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/p2pcdn/p2pcdn/internal/content"
)

var (
	// ErrChanged reports a seeded file that changed on disk since it was
	// hashed; its pieces must no longer be served.
	ErrChanged = errors.New("file changed on disk since it was hashed")
	// ErrCorrupt reports piece data that does not match its piece hash.
	ErrCorrupt = errors.New("piece data does not match its hash")
	// ErrRange reports a request outside the piece or the file.
	ErrRange = errors.New("request outside the piece or file")
	// ErrMissing reports a read of a piece this download has not verified yet.
	ErrMissing = errors.New("piece not downloaded yet")
)

// SeedFile serves the pieces of a complete file on disk.
type SeedFile struct {
	f       *os.File
	path    string
	info    *content.Info
	size    int64
	modTime time.Time
	changed atomic.Bool
}

// OpenSeed opens path for serving the pieces described by info. It refuses
// when the file's size differs from info.TotalLength.
func OpenSeed(path string, info *content.Info) (*SeedFile, error) {
	return OpenSeedSince(path, info, time.Time{})
}

// OpenSeedSince is OpenSeed for a file hashed when its modification time was
// hashedModTime: if the file was modified since (zero means unknown), it is
// refused with ErrChanged instead of serving content that may not match.
func OpenSeedSince(path string, info *content.Info, hashedModTime time.Time) (*SeedFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("seed %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("seed %s: not a regular file", path)
	}
	if fi.Size() != info.TotalLength {
		f.Close()
		return nil, fmt.Errorf("seed %s: file has %d bytes but its info dictionary says %d: %w",
			path, fi.Size(), info.TotalLength, ErrChanged)
	}
	if !hashedModTime.IsZero() && !fi.ModTime().Equal(hashedModTime) {
		f.Close()
		return nil, fmt.Errorf("seed %s: %w", path, ErrChanged)
	}
	return &SeedFile{f: f, path: path, info: info, size: fi.Size(), modTime: fi.ModTime()}, nil
}

// Info returns the file's info dictionary. Do not modify it.
func (s *SeedFile) Info() *content.Info { return s.info }

// Has reports whether piece can be served: every piece of the file, until
// the file is found to have changed.
func (s *SeedFile) Has(piece int) bool {
	return piece >= 0 && piece < s.info.PiecesAmount && !s.changed.Load()
}

// ReadBlock reads len(p) bytes at offset begin of piece into p. It returns
// ErrRange for a block outside the piece and ErrChanged once the file's size
// or modification time differ from when it was opened.
func (s *SeedFile) ReadBlock(piece, begin int, p []byte) error {
	off, err := blockOffset(s.info, piece, begin, len(p))
	if err != nil {
		return err
	}
	if s.changed.Load() {
		return fmt.Errorf("%s: %w", s.path, ErrChanged)
	}
	// One fstat per block is cheap next to the read and catches edits made
	// in place, which keep the inode the open descriptor points at.
	fi, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", s.path, err)
	}
	if fi.Size() != s.size || !fi.ModTime().Equal(s.modTime) {
		s.changed.Store(true)
		return fmt.Errorf("%s: %w", s.path, ErrChanged)
	}
	if _, err := s.f.ReadAt(p, off); err != nil {
		if errors.Is(err, io.EOF) {
			s.changed.Store(true)
			return fmt.Errorf("%s: %w", s.path, ErrChanged)
		}
		return fmt.Errorf("read %s: %w", s.path, err)
	}
	return nil
}

// Close closes the file.
func (s *SeedFile) Close() error { return s.f.Close() }

// blockOffset checks that the block lies inside the piece and returns its
// offset in the file.
func blockOffset(info *content.Info, piece, begin, length int) (int64, error) {
	size := info.PieceSize(piece)
	if size == 0 {
		return 0, fmt.Errorf("piece %d of %d: %w", piece, info.PiecesAmount, ErrRange)
	}
	if begin < 0 || length < 0 || begin > size || length > size-begin {
		return 0, fmt.Errorf("block %d+%d of piece %d (%d bytes): %w", begin, length, piece, size, ErrRange)
	}
	return int64(piece)*info.PiecesLength + int64(begin), nil
}
