// Package manifest reads and writes manifests: the list of a tree's files,
// each with its path relative to the tree's root and its info dictionary,
// so `p2pcdn get --manifest` can mirror a whole tree with its folders.
//
// A manifest is JSON Lines (UTF-8, one object per line). The first line
// names the format, every other line is one file:
//
//	{"p2pcdn_manifest":1}
//	{"path":"css/site.css","info":{"full_hash":"…","file_name":"site.css",…}}
//
// "info" holds the info dictionary's bytes exactly as the prototype (and
// `p2pcdn hash --json`) writes them. "path" is slash-separated and relative:
// no empty, "." or ".." component, no leading slash, no backslash, colon or
// control character, at most 255 bytes per component and 4096 in all.
// Unknown keys are ignored, so later versions may add some.
//
// A manifest may come from anyone: Read checks every path, refuses
// duplicates and paths that would need a file to be a folder too, and bounds
// what it reads (Limits); Target places a file under a root without ever
// writing outside it, through a symbolic link or otherwise.
package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/p2pcdn/p2pcdn/internal/content"
)

// Version is the format version this package writes and reads.
const Version = 1

// header is the first line of a manifest.
const header = `{"p2pcdn_manifest":1}`

// Bounds of a path.
const (
	MaxPathLen      = 4096
	MaxComponentLen = 255
)

// Entry is one file of a manifest.
type Entry struct {
	Path string // relative, slash-separated, checked by CheckPath
	Info *content.Info
}

// Limits bound what Read accepts; zero fields take the defaults.
type Limits struct {
	// MaxBytes bounds the whole manifest. Default 256 MiB: a tree of a
	// million small files takes about 300 bytes a file.
	MaxBytes int64
	// MaxEntries bounds the number of files. Default 1,000,000.
	MaxEntries int
	// MaxLine bounds one line. Default 16 MiB: the dictionary of a 70 GB
	// file.
	MaxLine int
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = 256 << 20
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = 1_000_000
	}
	if l.MaxLine <= 0 {
		l.MaxLine = 16 << 20
	}
	return l
}

// Writer writes a manifest line by line, so a long hashing run can write
// each file as it is hashed.
type Writer struct {
	w     *bufio.Writer
	begun bool
	seen  map[string]bool
}

// NewWriter returns a Writer on w. Call Flush at the end.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: bufio.NewWriter(w), seen: make(map[string]bool)}
}

// ErrDuplicate is returned by Writer.Add for a path already written.
var ErrDuplicate = errors.New("path already in the manifest")

// Add writes one file. It refuses a path CheckPath refuses, and one already
// added (wrapping ErrDuplicate).
func (w *Writer) Add(path string, info *content.Info) error {
	if err := CheckPath(path); err != nil {
		return err
	}
	if w.seen[path] {
		return fmt.Errorf("%s: %w", path, ErrDuplicate)
	}
	infoJSON, err := info.MarshalJSON()
	if err != nil {
		return err
	}
	if !w.begun {
		if _, err := w.w.WriteString(header + "\n"); err != nil {
			return err
		}
		w.begun = true
	}
	quoted, err := json.Marshal(path)
	if err != nil {
		return err
	}
	w.seen[path] = true
	w.w.WriteString(`{"path":`)
	w.w.Write(quoted)
	w.w.WriteString(`,"info":`)
	w.w.Write(infoJSON)
	_, err = w.w.WriteString("}\n")
	return err
}

// Flush writes what is buffered (and the header of an empty manifest).
func (w *Writer) Flush() error {
	if !w.begun {
		if _, err := w.w.WriteString(header + "\n"); err != nil {
			return err
		}
		w.begun = true
	}
	return w.w.Flush()
}

// Read reads a whole manifest and checks it: the header, every line, every
// path (CheckPath), no path twice, and no file where another entry needs a
// folder. Errors name the line.
func Read(r io.Reader, lim Limits) ([]Entry, error) {
	lim = lim.withDefaults()
	br := bufio.NewReaderSize(io.LimitReader(r, lim.MaxBytes+1), 64<<10)
	var (
		entries []Entry
		total   int64
		lineNo  int
	)
	for {
		line, err := readLine(br, lim.MaxLine)
		if err == io.EOF {
			break
		}
		lineNo++
		if err != nil {
			return nil, fmt.Errorf("manifest line %d: %w", lineNo, err)
		}
		total += int64(len(line)) + 1
		if total > lim.MaxBytes {
			return nil, fmt.Errorf("manifest larger than the limit of %d bytes", lim.MaxBytes)
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if lineNo == 1 {
			if err := checkHeader(line); err != nil {
				return nil, fmt.Errorf("not a p2pcdn manifest (line 1): %w", err)
			}
			continue
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if len(entries) == lim.MaxEntries {
			return nil, fmt.Errorf("manifest line %d: more than the limit of %d files", lineNo, lim.MaxEntries)
		}
		e, err := parseEntry(line)
		if err != nil {
			return nil, fmt.Errorf("manifest line %d: %w", lineNo, err)
		}
		entries = append(entries, e)
	}
	if lineNo == 0 {
		return nil, errors.New("not a p2pcdn manifest: the file is empty")
	}
	if err := checkTree(entries); err != nil {
		return nil, err
	}
	return entries, nil
}

// readLine returns the next line without its newline, refusing one longer
// than max without buffering it.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max+1 {
			return nil, fmt.Errorf("line longer than the limit of %d bytes", max)
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && len(line) > 0:
			return line, nil
		default:
			return nil, err
		}
	}
}

func checkHeader(line []byte) error {
	var h struct {
		Version *int `json:"p2pcdn_manifest"`
	}
	if err := json.Unmarshal(line, &h); err != nil || h.Version == nil {
		return fmt.Errorf(`want %s`, header)
	}
	if *h.Version != Version {
		return fmt.Errorf("format version %d; this p2pcdn reads version %d", *h.Version, Version)
	}
	return nil
}

func parseEntry(line []byte) (Entry, error) {
	if !utf8.Valid(line) {
		return Entry{}, errors.New("not valid UTF-8")
	}
	var raw struct {
		Path *string         `json:"path"`
		Info json.RawMessage `json:"info"`
	}
	if err := json.Unmarshal(line, &raw); err != nil {
		return Entry{}, fmt.Errorf("not a JSON object with path and info: %w", err)
	}
	if raw.Path == nil {
		return Entry{}, errors.New(`no "path"`)
	}
	if len(raw.Info) == 0 {
		return Entry{}, fmt.Errorf("%s: no \"info\"", quote(*raw.Path))
	}
	if err := CheckPath(*raw.Path); err != nil {
		return Entry{}, err
	}
	info, err := content.ParseInfo(raw.Info)
	if err != nil {
		return Entry{}, fmt.Errorf("%s: %w", quote(*raw.Path), err)
	}
	return Entry{Path: *raw.Path, Info: info}, nil
}

// CheckPath reports why p cannot name a file of a manifest (nil if it can).
func CheckPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case len(p) > MaxPathLen:
		return fmt.Errorf("path of %d bytes: more than the limit of %d", len(p), MaxPathLen)
	case !utf8.ValidString(p):
		return fmt.Errorf("path %s is not valid UTF-8", quote(p))
	case p[0] == '/':
		return fmt.Errorf("path %s is absolute; want one relative to the tree's root", quote(p))
	}
	for _, r := range p {
		switch {
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return fmt.Errorf("path %s holds a control character", quote(p))
		case r == '\\':
			return fmt.Errorf("path %s holds a backslash; manifest paths use /", quote(p))
		case r == ':':
			return fmt.Errorf("path %s holds a colon, which is not portable (drive letters, streams)", quote(p))
		}
	}
	for c := range strings.SplitSeq(p, "/") {
		switch {
		case c == "":
			return fmt.Errorf("path %s has an empty component", quote(p))
		case c == "." || c == "..":
			return fmt.Errorf("path %s has a %q component; want a plain path inside the tree", quote(p), c)
		case len(c) > MaxComponentLen:
			return fmt.Errorf("path %s has a component of %d bytes: more than the limit of %d", quote(p), len(c), MaxComponentLen)
		}
	}
	return nil
}

// checkTree refuses a path given twice, and a path that is also the folder
// of another ("a" and "a/b"). Sorting with "/" below every other byte puts
// a path's descendants right after it, so neighbours are all to compare.
func checkTree(entries []Entry) error {
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = strings.ReplaceAll(e.Path, "/", "\x00") // CheckPath refused NUL
	}
	slices.Sort(keys)
	for i := 1; i < len(keys); i++ {
		prev := strings.ReplaceAll(keys[i-1], "\x00", "/")
		cur := strings.ReplaceAll(keys[i], "\x00", "/")
		switch {
		case cur == prev:
			return fmt.Errorf("manifest names %s twice", quote(cur))
		case strings.HasPrefix(cur, prev+"/"):
			return fmt.Errorf("manifest names %s as a file and as the folder of %s", quote(prev), quote(cur))
		}
	}
	return nil
}

// quote quotes a path for an error message, cutting a long one short.
func quote(p string) string {
	if len(p) > 120 {
		p = p[:120] + "…"
	}
	return fmt.Sprintf("%q", p)
}
