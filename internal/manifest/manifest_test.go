package manifest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/p2pcdn/p2pcdn/internal/content"
)

// info returns the dictionary of size pattern bytes named name.
func info(t testing.TB, name string, size int) *content.Info {
	t.Helper()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + 3)
	}
	in, err := content.HashReaderAt(t.Context(), bytes.NewReader(data), int64(size), content.PieceLength, nil)
	if err != nil {
		t.Fatal(err)
	}
	in.FileName = name
	return in
}

func write(t testing.TB, entries []Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, e := range entries {
		if err := w.Add(e.Path, e.Info); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRoundTrip: what Writer writes, Read returns, and each line holds the
// info dictionary's bytes exactly as `p2pcdn hash --json` prints them.
func TestRoundTrip(t *testing.T) {
	in := []Entry{
		{"index.html", info(t, "index.html", 1000)},
		{"css/site.css", info(t, "site.css", 450_000)},
		{"img/a b/ünï <&>.png", info(t, "ünï <&>.png", 7)},
	}
	data := write(t, in)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if lines[0] != `{"p2pcdn_manifest":1}` || len(lines) != 1+len(in) {
		t.Fatalf("manifest:\n%s", data)
	}
	for i, e := range in {
		want, _ := e.Info.MarshalJSON()
		if !strings.HasSuffix(lines[1+i], `,"info":`+string(want)+`}`) {
			t.Errorf("line %d %s does not end with the dictionary's exact bytes %s", i+2, lines[1+i], want)
		}
	}
	out, err := Read(bytes.NewReader(data), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("read %d entries, wrote %d", len(out), len(in))
	}
	for i := range in {
		a, _ := in[i].Info.MarshalJSON()
		b, _ := out[i].Info.MarshalJSON()
		if out[i].Path != in[i].Path || !bytes.Equal(a, b) {
			t.Errorf("entry %d: read %q %s, wrote %q %s", i, out[i].Path, b, in[i].Path, a)
		}
	}
	// An empty manifest is a header alone, and reads back as no files.
	empty := write(t, nil)
	if got, err := Read(bytes.NewReader(empty), Limits{}); err != nil || len(got) != 0 {
		t.Fatalf("empty manifest %q: %v, %v", empty, got, err)
	}
}

func TestWriterRefuses(t *testing.T) {
	w := NewWriter(&bytes.Buffer{})
	in := info(t, "a", 10)
	if err := w.Add("../a", in); err == nil {
		t.Error("Add accepted ../a")
	}
	if err := w.Add("a", in); err != nil {
		t.Fatal(err)
	}
	if err := w.Add("a", in); err == nil {
		t.Error("Add accepted a path twice")
	}
}

func line(path string, in *content.Info) string {
	b, _ := in.MarshalJSON()
	q, _ := json.Marshal(path)
	return `{"path":` + string(q) + `,"info":` + string(b) + "}\n"
}

// TestHostile: every hostile manifest fails with an error that says what is
// wrong, within the limits.
func TestHostile(t *testing.T) {
	in := info(t, "x", 100)
	good, _ := in.MarshalJSON()
	forged := in.Clone()
	forged.PieceHashes = []string{strings.Repeat("0", 40)}
	h := header + "\n"
	for _, tc := range []struct {
		name, manifest, want string
		lim                  Limits
	}{
		{"empty file", "", "empty", Limits{}},
		{"no header", line("a", in), "not a p2pcdn manifest", Limits{}},
		{"other version", `{"p2pcdn_manifest":2}` + "\n", "version 2", Limits{}},
		{"dot dot", h + line("../../etc/passwd", in), `".." component`, Limits{}},
		{"dot dot inside", h + line("a/../../b", in), `".." component`, Limits{}},
		{"dot", h + line("./a", in), `"." component`, Limits{}},
		{"absolute", h + line("/etc/passwd", in), "absolute", Limits{}},
		{"backslash", h + line(`..\..\x`, in), "backslash", Limits{}},
		{"drive letter", h + line(`C:x`, in), "colon", Limits{}},
		{"empty path", h + line("", in), "empty path", Limits{}},
		{"empty component", h + line("a//b", in), "empty component", Limits{}},
		{"trailing slash", h + line("a/", in), "empty component", Limits{}},
		{"control character", h + line("a\x1b[31m", in), "control character", Limits{}},
		{"nul", h + line("a\x00b", in), "control character", Limits{}},
		{"long component", h + line(strings.Repeat("x", 256), in), "component of 256 bytes", Limits{}},
		{"long path", h + line(strings.Repeat("x/", 2100)+"y", in), "more than the limit of 4096", Limits{}},
		{"duplicate", h + line("a/b", in) + line("c", in) + line("a/b", in), `names "a/b" twice`, Limits{}},
		{"file and folder", h + line("a", in) + line("a-z", in) + line("a/b", in), `"a" as a file and as the folder of "a/b"`, Limits{}},
		{"folder then file", h + line("a/b/c", in) + line("a/b", in), `"a/b" as a file and as the folder`, Limits{}},
		{"no info", h + `{"path":"a"}` + "\n", `no "info"`, Limits{}},
		{"no path", h + `{"info":` + string(good) + "}\n", `no "path"`, Limits{}},
		{"not JSON", h + "hello\n", "not a JSON object", Limits{}},
		{"forged info", h + line("a", forged), "fold to", Limits{}},
		{"huge line", h + `{"path":"` + strings.Repeat("x", 5000) + "\n", "line longer than the limit of 1024", Limits{MaxLine: 1024}},
		{"too many files", h + line("a", in) + line("b", in) + line("c", in), "more than the limit of 2 files", Limits{MaxEntries: 2}},
		{"too big", h + strings.Repeat(line("a", in), 10), "larger than the limit of 1000 bytes", Limits{MaxBytes: 1000}},
		{"invalid UTF-8", h + `{"path":"a` + "\xff" + `","info":` + string(good) + "}\n", "UTF-8", Limits{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Read(strings.NewReader(tc.manifest), tc.lim)
			if err == nil {
				t.Fatalf("Read accepted it: %+v", got)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// TestTarget: files land under root in their folders; a link or a file in
// the way is refused and nothing is written outside root.
func TestTarget(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mirror")
	p, err := Target(root, "a/b/c.txt")
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(root, "a", "b", "c.txt") {
		t.Fatalf("Target = %q", p)
	}
	if fi, err := os.Stat(filepath.Dir(p)); err != nil || !fi.IsDir() {
		t.Fatalf("folder not made: %v", err)
	}

	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "a"), filepath.Join(root, "in")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ rel, want string }{
		{"out/x/y.txt", "symbolic link"},
		{"out/y.txt", "symbolic link"},
		{"in/y.txt", "symbolic link"},
		{"file/y.txt", "file"},
		{"../y.txt", `".."`},
	} {
		if _, err := Target(root, tc.rel); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Target(%q) = %v; want an error saying %q", tc.rel, err, tc.want)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("something was made outside root: %v", ents)
	}
}

// FuzzRead: any bytes read as a manifest give an error or entries whose
// paths all stay inside a root, each once; never a panic or a hang.
func FuzzRead(f *testing.F) {
	in := info(f, "x", 100)
	f.Add([]byte(header + "\n" + line("a/b.txt", in) + line("c", in)))
	f.Add([]byte(header + "\n" + line("../x", in)))
	f.Add([]byte(header + "\n" + line("a", in) + line("a/b", in)))
	f.Add([]byte(header + "\r\n\n" + line("é/ü", in)))
	f.Add([]byte(`{"p2pcdn_manifest":1,"x":[1]}` + "\n" + `{"path":"a","info":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := Read(bytes.NewReader(data), Limits{MaxBytes: 1 << 16, MaxEntries: 64, MaxLine: 1 << 14})
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, e := range entries {
			if seen[e.Path] {
				t.Fatalf("%q accepted twice", e.Path)
			}
			seen[e.Path] = true
			if !filepath.IsLocal(filepath.FromSlash(e.Path)) || CheckPath(e.Path) != nil {
				t.Fatalf("accepted path %q is not local", e.Path)
			}
			if e.Info == nil || e.Info.Validate() != nil {
				t.Fatalf("accepted an invalid info for %q", e.Path)
			}
		}
		for p := range seen {
			for q := range seen {
				if strings.HasPrefix(q, p+"/") {
					t.Fatalf("accepted %q as a file and the folder of %q", p, q)
				}
			}
		}
	})
}
