package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
)

// HashFile hashes the file at path into its info dictionary, with the
// prototype's piece length and the file's base name (reduced by SafeName).
// Pieces are hashed in parallel by one worker per CPU, each reading with
// ReadAt into its own reusable buffer, so memory stays at a few hundred KiB
// per CPU whatever the file size. progress, if not nil, is called with the
// number of bytes just hashed; calls are serialized. A 0-byte file gives
// ErrEmptyFile; a file that changes while it is hashed gives an error.
func HashFile(ctx context.Context, path string, progress func(n int64)) (*Info, error) {
	info, _, err := HashFileStat(ctx, path, progress)
	return info, err
}

// HashFileStat is HashFile that also returns the file's metadata as it was
// while hashing (from the open file), for keying caches and detecting later
// changes.
func HashFileStat(ctx context.Context, path string, progress func(n int64)) (*Info, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("hash: %w", err)
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("hash %s: %w", path, err)
	}
	if !before.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("hash %s: not a regular file", path)
	}
	if before.Size() == 0 {
		return nil, nil, fmt.Errorf("hash %s: %w", path, ErrEmptyFile)
	}
	info, err := HashReaderAt(ctx, f, before.Size(), PieceLength, progress)
	if err != nil {
		return nil, nil, fmt.Errorf("hash %s: %w", path, err)
	}
	after, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("hash %s: %w", path, err)
	}
	if after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		return nil, nil, fmt.Errorf("hash %s: file changed while it was being hashed", path)
	}
	info.FileName = SafeName(filepath.Base(path))
	return info, after, nil
}

// HashReaderAt hashes size bytes of r in pieces of pieceLength, in parallel.
// The returned Info has every field but FileName set.
func HashReaderAt(ctx context.Context, r io.ReaderAt, size, pieceLength int64, progress func(n int64)) (*Info, error) {
	if size <= 0 {
		return nil, ErrEmptyFile
	}
	if pieceLength <= 0 {
		return nil, fmt.Errorf("piece length %d is not positive", pieceLength)
	}
	n := int((size + pieceLength - 1) / pieceLength)
	hashes := make([]string, n)
	workers := min(runtime.GOMAXPROCS(0), n)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64 // next piece to claim
	var progressMu sync.Mutex
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Buffers no bigger than the file: hashing many small files
			// (a site's assets) must not allocate a whole piece for each.
			ph := newPieceHasher(min(size, expandChunk))
			buf := make([]byte, min(pieceLength, size))
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				off := i * pieceLength
				p := buf[:min(pieceLength, size-off)]
				if _, err := r.ReadAt(p, off); err != nil {
					if errors.Is(err, io.EOF) {
						err = errors.New("file is shorter than when hashing started")
					}
					cancel(fmt.Errorf("read piece %d: %w", i, err))
					return
				}
				hashes[i] = ph.Hash(p)
				if progress != nil {
					progressMu.Lock()
					progress(int64(len(p)))
					progressMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return &Info{
		FullHash:     FullHash(hashes),
		PiecesLength: pieceLength,
		PiecesAmount: n,
		TotalLength:  size,
		PieceHashes:  hashes,
	}, nil
}
