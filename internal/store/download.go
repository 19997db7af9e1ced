package store

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/p2pcdn/p2pcdn/internal/content"
)

// File name suffixes of an unfinished download next to its final path.
const (
	PartSuffix  = ".part"       // the data, written piece by piece in place
	StateSuffix = ".part.state" // which pieces of the .part are verified
)

// stateInterval bounds how often the state file is rewritten while pieces
// arrive. A crash loses at most this much progress, which is simply fetched
// again; resuming re-verifies every claimed piece anyway.
const stateInterval = 500 * time.Millisecond

// stateMagic starts every state file; the digit is the format version.
const stateMagic = "P2PCDNS1"

// Download is a file being fetched: verified pieces go into finalPath+".part"
// and a small state file remembers which ones are done, so a later
// OpenDownload resumes. Finish moves the complete file to finalPath.
type Download struct {
	finalPath, partPath, statePath string
	info                           *content.Info
	f                              *os.File
	unlock                         func()
	hashers                        sync.Pool // *content.PieceHasher

	mu        sync.Mutex
	have      []byte // verified pieces, bitfield MSB first
	missing   int
	gen       uint64 // bumps on every change of have
	finished  bool
	closed    bool
	lastSaved time.Time

	saveMu   sync.Mutex // serializes state writes
	savedGen uint64     // guarded by saveMu

	// readHook, when set by tests, sees every piece read during resume.
	readHook func(piece int)
}

// OpenDownload creates or resumes the download of info into finalPath. An
// existing state file is trusted only after each piece it claims has been
// read back and hashed again; pieces that fail are forgotten and fetched
// anew. A state file that is corrupt or belongs to another file is ignored.
func OpenDownload(finalPath string, info *content.Info) (*Download, error) {
	return openDownloadHook(finalPath, info, nil)
}

func openDownloadHook(finalPath string, info *content.Info, readHook func(piece int)) (*Download, error) {
	if err := info.Validate(); err != nil {
		return nil, fmt.Errorf("download %s: %w", finalPath, err)
	}
	d := &Download{
		finalPath: finalPath,
		partPath:  finalPath + PartSuffix,
		statePath: finalPath + StateSuffix,
		info:      info,
		have:      make([]byte, (info.PiecesAmount+7)/8),
		missing:   info.PiecesAmount,
		readHook:  readHook,
	}
	d.hashers.New = func() any { return content.NewPieceHasher() }
	if err := d.open(); err != nil {
		return nil, fmt.Errorf("download %s: %w", finalPath, err)
	}
	return d, nil
}

// ErrNotOurs reports a file at a download's .part or state path that this
// package did not create for the same content: it is left alone, never
// truncated, followed or replaced.
var ErrNotOurs = errors.New("left alone; remove it or choose another target")

// maxStateFile bounds what is read of a state file: one for a file with
// millions of pieces is still far smaller.
const maxStateFile = 1 << 20

// stateKind classifies what lies at a download's state path.
type stateKind int

const (
	stateMissing stateKind = iota
	stateForeign           // not a state file of ours: a link, another kind of file, other bytes
	stateOther             // an intact state of ours for other content
	stateMatch             // ours for this content (possibly damaged: then it claims nothing)
)

// open opens the .part, creating it (and first its state) when there is
// none. An existing .part is used only when a state file of ours for the
// same content lies beside it, so a file that merely has the name (or a
// symbolic link planted there) is never truncated or written through.
func (d *Download) open() error {
	for range 3 {
		f, err := os.OpenFile(d.partPath, os.O_RDWR|oNoFollow, 0)
		if errors.Is(err, fs.ErrNotExist) {
			f, err = d.create()
			if errors.Is(err, fs.ErrExist) {
				continue // another process created it meanwhile: open that one
			}
			if err != nil {
				return err
			}
			return d.prepare(f, nil)
		}
		if err != nil {
			return d.explainOpen(d.partPath, err)
		}
		return d.prepare(f, f)
	}
	return fmt.Errorf("%s keeps appearing and disappearing", d.partPath)
}

// create writes an empty state first and then creates the .part exclusively,
// so every .part we create has its state beside it from its first moment.
func (d *Download) create() (*os.File, error) {
	// A state of ours without its .part is a leftover: replace it.
	if kind, _, _ := d.readState(); kind == stateForeign {
		return nil, fmt.Errorf("%s exists and is not a download state of ours; %w", d.statePath, ErrNotOurs)
	}
	if err := d.writeState(make([]byte, len(d.have))); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(d.partPath, os.O_RDWR|os.O_CREATE|os.O_EXCL|oNoFollow, 0o644)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, d.explainOpen(d.partPath, err)
	}
	return f, err
}

// explainOpen words an open error, naming a symbolic link as such.
func (d *Download) explainOpen(path string, err error) error {
	if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%s is a symbolic link, not followed; %w", path, ErrNotOurs)
	}
	return err
}

// prepare locks the .part, checks that an existing one is ours, sizes it,
// re-verifies what the state claims and rewrites the state. existing is f
// when the .part was there before, nil when create made it.
func (d *Download) prepare(f, existing *os.File) error {
	unlock, err := lockFile(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("%s is in use by another download: %w", d.partPath, err)
	}
	d.f, d.unlock = f, unlock
	fail := func(err error) error {
		unlock()
		f.Close()
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if !fi.Mode().IsRegular() {
		return fail(fmt.Errorf("%s is not a regular file; %w", d.partPath, ErrNotOurs))
	}
	kind, claimed, other := d.readState()
	if existing != nil {
		switch kind {
		case stateOther:
			return fail(fmt.Errorf("%s holds an unfinished download of other content (%s); %w",
				d.partPath, other, ErrNotOurs))
		case stateMissing, stateForeign:
			return fail(fmt.Errorf("%s exists but was not created by a download of this file (no state of ours beside it); %w",
				d.partPath, ErrNotOurs))
		}
	}
	if fi.Size() != d.info.TotalLength {
		// Sparse where the file system allows; a short .part grows with zeros
		// that then fail re-verification.
		if err := f.Truncate(d.info.TotalLength); err != nil {
			return fail(fmt.Errorf("size %s: %w", d.partPath, err))
		}
	}
	for i, ok := range d.verify(claimed) {
		if ok {
			d.have[claimed[i]/8] |= 0x80 >> (claimed[i] % 8)
			d.missing--
		}
	}
	// Rewrite the state now so claims that failed are gone from disk too.
	d.gen++
	if err := d.saveState(true); err != nil {
		return fail(err)
	}
	return nil
}

// readState classifies the state file and returns the pieces it claims
// (only for stateMatch with an intact checksum) or, for stateOther, the
// full hash it belongs to. It never follows a symbolic link and reads at
// most maxStateFile bytes.
func (d *Download) readState() (kind stateKind, claimed []int, other string) {
	f, err := os.OpenFile(d.statePath, os.O_RDONLY|oNoFollow, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return stateMissing, nil, ""
	}
	if err != nil {
		return stateForeign, nil, ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return stateForeign, nil, ""
	}
	data, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	const minState = len(stateMagic) + 20 + 8 + 8 + 4 + 8
	if err != nil || len(data) > maxStateFile || len(data) < minState || string(data[:len(stateMagic)]) != stateMagic {
		return stateForeign, nil, ""
	}
	body, sum := data[:len(data)-8], binary.BigEndian.Uint64(data[len(data)-8:])
	intact := xxhash.Sum64(body) == sum
	want := d.encodeState(make([]byte, len(d.have)))
	// Header (everything before the bitfield) must match this info exactly.
	hdr := len(want) - 8 - len(d.have)
	if len(data) != len(want) || !bytes.Equal(data[:hdr], want[:hdr]) {
		if intact {
			return stateOther, nil, hex.EncodeToString(data[len(stateMagic) : len(stateMagic)+20])
		}
		return stateMatch, nil, "" // ours but damaged: reuse the .part, trust nothing
	}
	if !intact {
		return stateMatch, nil, ""
	}
	bits := body[hdr:]
	for i := range d.info.PiecesAmount {
		if bits[i/8]&(0x80>>(i%8)) != 0 {
			claimed = append(claimed, i)
		}
	}
	return stateMatch, claimed, ""
}

// encodeState serializes the state: magic, raw full hash, total length,
// piece length, piece count, bitfield, then an xxhash64 of all of it
// (a checksum against torn or damaged files, not a content check).
func (d *Download) encodeState(have []byte) []byte {
	b := make([]byte, 0, len(stateMagic)+20+8+8+4+len(have)+8)
	b = append(b, stateMagic...)
	full, _ := hex.DecodeString(d.info.FullHash)
	b = append(b, full...)
	b = binary.BigEndian.AppendUint64(b, uint64(d.info.TotalLength))
	b = binary.BigEndian.AppendUint64(b, uint64(d.info.PiecesLength))
	b = binary.BigEndian.AppendUint32(b, uint32(d.info.PiecesAmount))
	b = append(b, have...)
	return binary.BigEndian.AppendUint64(b, xxhash.Sum64(b))
}

// verify re-hashes the given pieces of the .part in parallel and reports
// which ones match.
func (d *Download) verify(pieces []int) []bool {
	ok := make([]bool, len(pieces))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(pieces)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, d.info.PiecesLength)
			h := content.NewPieceHasher()
			for {
				k := int(next.Add(1) - 1)
				if k >= len(pieces) {
					return
				}
				i := pieces[k]
				if d.readHook != nil {
					d.readHook(i)
				}
				p := buf[:d.info.PieceSize(i)]
				if _, err := d.f.ReadAt(p, int64(i)*d.info.PiecesLength); err != nil {
					continue
				}
				ok[k] = h.Hash(p) == d.info.PieceHashes[i]
			}
		}()
	}
	wg.Wait()
	return ok
}

// saveState writes the state file atomically (temporary file + rename) if it
// changed since the last write. Without force it writes at most once per
// stateInterval. No fsync: a lost update only costs a refetch.
func (d *Download) saveState(force bool) error {
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	d.mu.Lock()
	if d.finished || d.gen == d.savedGen || (!force && time.Since(d.lastSaved) < stateInterval) {
		d.mu.Unlock()
		return nil
	}
	gen := d.gen
	have := bytes.Clone(d.have)
	d.lastSaved = time.Now()
	d.mu.Unlock()

	if err := d.writeState(have); err != nil {
		return err
	}
	d.savedGen = gen
	return nil
}

// writeState replaces the state file with have's through a temporary file
// created exclusively (never through a link planted at its name), which is
// removed again on any failure: a full disk leaves no empty .tmp behind, and
// the previous state stays valid.
func (d *Download) writeState(have []byte) error {
	tmp := d.statePath + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|oNoFollow, 0o644)
	if errors.Is(err, fs.ErrExist) && removeStaleTmp(tmp) {
		f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|oNoFollow, 0o644)
	}
	if err != nil {
		return fmt.Errorf("save download state: %w", err)
	}
	_, err = f.Write(d.encodeState(have))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, d.statePath)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save download state: %w", err)
	}
	return nil
}

// removeStaleTmp removes a state temporary file left by an interrupted write
// of ours (empty or starting with our magic) or a symbolic link planted at
// its name (removing a link leaves its target alone). Anything else stays,
// and the state write fails.
func removeStaleTmp(path string) bool {
	fi, err := os.Lstat(path)
	if err != nil {
		return false
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		if !fi.Mode().IsRegular() || fi.Size() > maxStateFile {
			return false
		}
		f, err := os.OpenFile(path, os.O_RDONLY|oNoFollow, 0)
		if err != nil {
			return false
		}
		head := make([]byte, len(stateMagic))
		n, _ := io.ReadFull(f, head)
		f.Close()
		if n != 0 && string(head[:n]) != stateMagic {
			return false
		}
	}
	return os.Remove(path) == nil
}

// Info returns the download's info dictionary. Do not modify it.
func (d *Download) Info() *content.Info { return d.info }

// Has reports whether piece is verified and stored.
func (d *Download) Has(piece int) bool {
	if piece < 0 || piece >= d.info.PiecesAmount {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.have[piece/8]&(0x80>>(piece%8)) != 0
}

// Missing returns the number of pieces not verified yet.
func (d *Download) Missing() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.missing
}

// Bitfield returns a copy of the verified pieces as a BitTorrent bitfield
// (MSB first, spare bits zero).
func (d *Download) Bitfield() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return bytes.Clone(d.have)
}

// ReadBlock reads a block of a verified piece, for re-sharing while
// downloading. It returns ErrRange outside the piece and ErrMissing for a
// piece not verified yet.
func (d *Download) ReadBlock(piece, begin int, p []byte) error {
	off, err := blockOffset(d.info, piece, begin, len(p))
	if err != nil {
		return err
	}
	if !d.Has(piece) {
		return fmt.Errorf("piece %d: %w", piece, ErrMissing)
	}
	if _, err := d.f.ReadAt(p, off); err != nil {
		return fmt.Errorf("read %s: %w", d.partPath, err)
	}
	return nil
}

// WritePiece verifies data against the piece's hash (ErrCorrupt if it does
// not match, ErrRange if its length is wrong) and stores it. Writing a piece
// already stored is a no-op.
func (d *Download) WritePiece(piece int, data []byte) error {
	if err := d.checkSize(piece, data); err != nil {
		return err
	}
	h := d.hashers.Get().(*content.PieceHasher)
	sum := h.Hash(data)
	d.hashers.Put(h)
	if sum != d.info.PieceHashes[piece] {
		return fmt.Errorf("piece %d: %w", piece, ErrCorrupt)
	}
	return d.write(piece, data)
}

// WriteVerifiedPiece stores a piece the caller has already checked against
// its piece hash (the swarm does, before it hands a piece over), so the
// bytes are not hashed a second time on the download's hot path.
func (d *Download) WriteVerifiedPiece(piece int, data []byte) error {
	if err := d.checkSize(piece, data); err != nil {
		return err
	}
	return d.write(piece, data)
}

func (d *Download) checkSize(piece int, data []byte) error {
	size := d.info.PieceSize(piece)
	if size == 0 || len(data) != size {
		return fmt.Errorf("piece %d: %d bytes, want %d: %w", piece, len(data), size, ErrRange)
	}
	return nil
}

// write stores a piece of the right size that is known to be good.
func (d *Download) write(piece int, data []byte) error {
	if d.Has(piece) {
		return nil
	}
	d.mu.Lock()
	closed := d.closed || d.finished
	d.mu.Unlock()
	if closed {
		return fmt.Errorf("piece %d: download already closed or finished", piece)
	}
	// The data goes to disk before the state can claim it.
	if _, err := d.f.WriteAt(data, int64(piece)*d.info.PiecesLength); err != nil {
		return fmt.Errorf("write %s: %w", d.partPath, err)
	}
	d.mu.Lock()
	if d.have[piece/8]&(0x80>>(piece%8)) == 0 {
		d.have[piece/8] |= 0x80 >> (piece % 8)
		d.missing--
		d.gen++
	}
	d.mu.Unlock()
	return d.saveState(false)
}

// Finish completes the download once every piece is verified: it flushes the
// data to disk, renames the .part to the final path atomically and removes
// the state file. If a file has appeared at the final path meanwhile, it is
// left alone and Finish fails with an error wrapping fs.ErrExist. The file stays open, so ReadBlock
// keeps serving it until Close.
func (d *Download) Finish() error {
	d.mu.Lock()
	missing, finished, closed := d.missing, d.finished, d.closed
	d.mu.Unlock()
	switch {
	case finished:
		return nil
	case closed:
		return errors.New("finish: download already closed")
	case missing > 0:
		return fmt.Errorf("finish %s: %d of %d pieces still missing", d.finalPath, missing, d.info.PiecesAmount)
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("finish %s: %w", d.finalPath, err)
	}
	// Never over a file that appeared at the final path since we started.
	if err := renameNoReplace(d.partPath, d.finalPath); err != nil {
		return fmt.Errorf("finish: %w", err)
	}
	syncDir(filepath.Dir(d.finalPath))
	d.mu.Lock()
	d.finished = true
	d.mu.Unlock()
	d.saveMu.Lock() // wait out a state write in flight before removing the file
	os.Remove(d.statePath)
	d.saveMu.Unlock()
	return nil
}

// Close stops the download, keeping the .part and its state for resuming
// (or, after Finish, just closes the file).
func (d *Download) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.mu.Unlock()
	err := d.saveState(true)
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.unlock()
	if cerr := d.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a rename in dir durable. Failure only weakens durability,
// never correctness, so it is ignored.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}
