package content

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

type vector struct {
	Size               int64      `json:"size"`
	FileName           string     `json:"file_name"`
	InfoDictionaryJSON string     `json:"info_dictionary_json"`
	SHA1Raw            string     `json:"sha1_of_raw_file_bytes"`
	MerkleLevels       [][]string `json:"merkle_levels"`
	NotDuplicateLast   string     `json:"note_not_equal_to_duplicate_last_merkle"`
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "content", "prototype-vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		PiecesLength int      `json:"pieces_length"`
		Vectors      []vector `json:"vectors"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.PiecesLength != PieceLength || len(doc.Vectors) < 8 {
		t.Fatalf("unexpected vectors file: pieces_length %d, %d vectors", doc.PiecesLength, len(doc.Vectors))
	}
	return doc.Vectors
}

// vectorBytes is the vectors' content rule: byte[i] = (i*7+3) mod 256.
func vectorBytes(n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((i*7 + 3) % 256)
	}
	return b
}

func writeVectorFile(t testing.TB, dir string, v vector) string {
	t.Helper()
	path := filepath.Join(dir, v.FileName)
	if err := os.WriteFile(path, vectorBytes(v.Size), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestVectors(t *testing.T) {
	dir := t.TempDir()
	for _, v := range loadVectors(t) {
		t.Run(v.FileName, func(t *testing.T) {
			data := vectorBytes(v.Size)
			if got := sha1.Sum(data); hex.EncodeToString(got[:]) != v.SHA1Raw {
				t.Fatalf("content rule mismatch: raw sha1 %x, want %s", got, v.SHA1Raw)
			}
			path := writeVectorFile(t, dir, v)
			info, err := HashFile(context.Background(), path, nil)
			if v.Size == 0 {
				if !errors.Is(err, ErrEmptyFile) {
					t.Fatalf("HashFile of empty file: err %v, want ErrEmptyFile", err)
				}
				// The prototype still emits a dictionary without full_hash; check our encoder agrees.
				empty := &Info{FileName: v.FileName, PiecesLength: PieceLength, PieceHashes: []string{}}
				got, _ := empty.MarshalJSON()
				if string(got) != v.InfoDictionaryJSON {
					t.Fatalf("empty marshal:\n got %s\nwant %s", got, v.InfoDictionaryJSON)
				}
				if _, err := ParseInfo([]byte(v.InfoDictionaryJSON)); !errors.Is(err, ErrEmptyFile) {
					t.Fatalf("ParseInfo of empty dictionary: err %v, want ErrEmptyFile", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := info.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != v.InfoDictionaryJSON {
				t.Fatalf("marshal:\n got %s\nwant %s", got, v.InfoDictionaryJSON)
			}
			// encoding/json must use our MarshalJSON too.
			if viaJSON, _ := json.Marshal(info); string(viaJSON) != v.InfoDictionaryJSON {
				t.Fatalf("json.Marshal:\n got %s\nwant %s", viaJSON, v.InfoDictionaryJSON)
			}
			// Merkle levels, level by level.
			levels := MerkleLevels(info.PieceHashes)
			if len(levels) != len(v.MerkleLevels) {
				t.Fatalf("%d merkle levels, want %d", len(levels), len(v.MerkleLevels))
			}
			for i := range levels {
				if strings.Join(levels[i], ",") != strings.Join(v.MerkleLevels[i], ",") {
					t.Fatalf("merkle level %d: %v, want %v", i, levels[i], v.MerkleLevels[i])
				}
			}
			if v.NotDuplicateLast != "" && info.FullHash == v.NotDuplicateLast {
				t.Fatal("full hash equals the duplicate-last-node Merkle variant; the undefined quirk is lost")
			}
			// Piece hashes straight from the bytes.
			for i, h := range info.PieceHashes {
				start := int64(i) * PieceLength
				if got := PieceHash(data[start : start+int64(info.PieceSize(i))]); got != h {
					t.Fatalf("piece %d: %s, want %s", i, got, h)
				}
			}
			parsed, err := ParseInfo([]byte(v.InfoDictionaryJSON))
			if err != nil {
				t.Fatal(err)
			}
			again, _ := parsed.MarshalJSON()
			if string(again) != v.InfoDictionaryJSON {
				t.Fatalf("parse+marshal round trip:\n got %s\nwant %s", again, v.InfoDictionaryJSON)
			}
		})
	}
}

func TestPieceHashExpansion(t *testing.T) {
	// Every byte value, at every alignment, against a straightforward encoder.
	all := make([]byte, 0, 3*256)
	for i := range 3 * 256 {
		all = append(all, byte(i*31+i/256))
	}
	for start := range 9 {
		for _, n := range []int{0, 1, 7, 8, 9, 63, 500, len(all) - start} {
			p := all[start : start+n]
			var ref []byte
			for _, b := range p {
				ref = utf8.AppendRune(ref, rune(b))
			}
			sum := sha1.Sum(ref)
			if got := PieceHash(p); got != hex.EncodeToString(sum[:]) {
				t.Fatalf("start %d len %d: %s, want %x", start, n, got, sum)
			}
		}
	}
	// Longer than one expansion chunk, all ASCII and mixed.
	big := vectorBytes(3*expandChunk + 5)
	var ref []byte
	for _, b := range big {
		ref = utf8.AppendRune(ref, rune(b))
	}
	sum := sha1.Sum(ref)
	h := NewPieceHasher()
	if got := h.Hash(big); got != hex.EncodeToString(sum[:]) {
		t.Fatalf("big: %s, want %x", got, sum)
	}
	if got := h.Hash(big); got != hex.EncodeToString(sum[:]) {
		t.Fatal("reused hasher differs")
	}
	ascii := bytes.Repeat([]byte("abcdefgh"), expandChunk/4+1)
	sum = sha1.Sum(ascii)
	if got := h.Hash(ascii); got != hex.EncodeToString(sum[:]) {
		t.Fatalf("ascii: %s, want %x", got, sum)
	}
}

func TestMarshalEscapesLikeJavaScript(t *testing.T) {
	info := validInfo(t)
	for name, want := range map[string]string{
		`a<b>&c.txt`:          `"a<b>&c.txt"`,
		"line\u2028sep\u2029": "\"line\u2028sep\u2029\"",
		"q\"uote\\back":       `"q\"uote\\back"`,
		"c\x00\x01\x1f\x7f":   "\"c\\u0000\\u0001\\u001f\x7f\"",
		"\b\f\n\r\t":          `"\b\f\n\r\t"`,
		"bad\xffutf8":         "\"bad\ufffdutf8\"",
		"日本語 ✓ 🎉.png":         `"日本語 ✓ 🎉.png"`,
	} {
		info.FileName = name
		b, _ := info.MarshalJSON()
		if !bytes.Contains(b, []byte(`"file_name":`+want+`,`)) {
			t.Errorf("file_name %q encoded as %s, want %s", name, b, want)
		}
	}
}

func validInfo(t testing.TB) *Info {
	t.Helper()
	data := vectorBytes(450000)
	info, err := HashReaderAt(context.Background(), bytes.NewReader(data), int64(len(data)), PieceLength, nil)
	if err != nil {
		t.Fatal(err)
	}
	info.FileName = "x.bin"
	if err := info.Validate(); err != nil {
		t.Fatal(err)
	}
	return info
}

func TestParseInfoRejects(t *testing.T) {
	good := validInfo(t)
	goodJSON, _ := good.MarshalJSON()
	h := good.PieceHashes
	mutate := func(f func(m map[string]any)) string {
		var m map[string]any
		if err := json.Unmarshal(goodJSON, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	cases := []struct{ name, in, wantErr string }{
		{"not json", `hello`, "not JSON"},
		{"array", `[1,2]`, "not a JSON object"},
		{"truncated", string(goodJSON[:len(goodJSON)-5]), "malformed"},
		{"trailing", string(goodJSON) + "{}", "trailing data"},
		{"invalid utf8", strings.Replace(string(goodJSON), "x.bin", "x\xff.bin", 1), "not valid UTF-8"},
		{"duplicate key", strings.Replace(string(goodJSON), `"file_name":"x.bin"`, `"file_name":"x.bin","file_name":"y"`, 1), `duplicate key "file_name"`},
		{"missing field", mutate(func(m map[string]any) { delete(m, "piece_hashes") }), "missing field piece_hashes"},
		{"null", mutate(func(m map[string]any) { m["file_name"] = nil }), "file_name is null"},
		{"string length", mutate(func(m map[string]any) { m["total_length"] = "450000" }), "wrong type or value for total_length: got a JSON string"},
		{"float length", mutate(func(m map[string]any) { m["pieces_length"] = 200000.5 }), "pieces_length"},
		{"null hash", mutate(func(m map[string]any) { m["piece_hashes"] = []any{h[0], nil, h[2]} }), "piece_hashes[1] is empty or null"},
		{"number hash", mutate(func(m map[string]any) { m["piece_hashes"] = []any{h[0], 5, h[2]} }), "wrong type or value for piece_hashes"},
		{"uppercase", mutate(func(m map[string]any) { m["full_hash"] = strings.ToUpper(good.FullHash) }), "not lowercase hex"},
		{"short hash", mutate(func(m map[string]any) { m["piece_hashes"] = []any{h[0], "abc", h[2]} }), "piece_hashes[1]"},
		{"amount vs hashes", mutate(func(m map[string]any) { m["piece_hashes"] = []any{h[0], h[1]} }), "pieces_amount 3 but 2 piece hashes"},
		{"amount vs length", mutate(func(m map[string]any) { m["pieces_amount"] = 4 }), "pieces_amount 4 but total_length 450000 needs 3 pieces"},
		{"zero length", mutate(func(m map[string]any) { m["total_length"] = 0 }), "total_length 0"},
		{"negative length", mutate(func(m map[string]any) { m["total_length"] = -5 }), "total_length -5"},
		{"tiny pieces", mutate(func(m map[string]any) { m["pieces_length"] = 10 }), "pieces_length 10 outside"},
		{"huge pieces", mutate(func(m map[string]any) { m["pieces_length"] = 1 << 30 }), "outside"},
		{"too many pieces", mutate(func(m map[string]any) { m["pieces_length"] = 1024; m["total_length"] = 1 << 40 }), "more than the limit"},
		{"wrong fold", mutate(func(m map[string]any) { m["piece_hashes"] = []any{h[1], h[0], h[2]} }), "fold to"},
		{"empty file", `{"file_name":"a","pieces_length":200000,"pieces_amount":0,"total_length":0,"piece_hashes":[]}`, "empty file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseInfo([]byte(c.in))
			if err == nil {
				t.Fatalf("accepted %s", c.in)
			}
			if !strings.Contains(err.Error(), c.wantErr) || !strings.HasPrefix(err.Error(), "info dictionary: ") {
				t.Fatalf("error %q does not mention %q", err, c.wantErr)
			}
		})
	}
}

func TestParseInfoAccepts(t *testing.T) {
	good := validInfo(t)
	goodJSON, _ := good.MarshalJSON()
	// Unknown fields are ignored, whitespace and field order do not matter, the name is sanitized.
	var m map[string]any
	json.Unmarshal(goodJSON, &m)
	m["file_name"] = "../../etc/passwd"
	m["comment"] = map[string]any{"nested": []any{1, "two"}}
	b, _ := json.MarshalIndent(m, "", "  ")
	info, err := ParseInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	if info.FileName != "passwd" || info.FullHash != good.FullHash || info.PieceSize(2) != 50000 || info.PieceSize(0) != PieceLength {
		t.Fatalf("unexpected result %+v", info)
	}
	if info.PieceSize(3) != 0 || info.PieceSize(-1) != 0 {
		t.Fatal("PieceSize outside the file must be 0")
	}
}

func TestSafeName(t *testing.T) {
	long := strings.Repeat("é", 300) + ".tar.gz"
	cases := []struct{ in, want string }{
		{"a.png", "a.png"},
		{"../../etc/passwd", "passwd"},
		{"a/b", "b"},
		{"a/", "download"},
		{"..", "_."},
		{".", "_"},
		{"", "download"},
		{".bashrc", "_bashrc"},
		{"con\x00trol", "con_trol"},
		{"tab\there\x7f\u0085", "tab_here__"},
		{"\\windows\\path", "path"},
		{`C:\Users\x\evil.exe`, "evil.exe"},
		{"bad\xff\xfeutf8", "bad__utf8"},
		{"evil\u202egnp.exe", "evil_gnp.exe"},
		{"日本語 ✓ 🎉.png", "日本語 ✓ 🎉.png"},
		{strings.Repeat("a", 240), strings.Repeat("a", 240)},
		{strings.Repeat("a", 300) + ".png", strings.Repeat("a", 236) + ".png"},
		{long, strings.Repeat("é", 118) + ".gz"},
		{strings.Repeat("x", 300) + "." + strings.Repeat("y", 40), strings.Repeat("x", 240)},
	}
	for _, c := range cases {
		got := SafeName(c.in)
		if got != c.want {
			t.Errorf("SafeName(%q) = %q, want %q", c.in, got, c.want)
		}
		checkSafe(t, c.in, got)
	}
}

func checkSafe(t *testing.T, in, got string) {
	t.Helper()
	if got == "" || got == "." || got == ".." || strings.HasPrefix(got, ".") || strings.ContainsAny(got, "/\\\x00") ||
		len(got) > MaxNameLen || !utf8.ValidString(got) {
		t.Fatalf("SafeName(%q) = %q is not safe", in, got)
	}
	for _, r := range got {
		if r < 0x20 || r == 0x7f {
			t.Fatalf("SafeName(%q) = %q has a control character", in, got)
		}
	}
	if again := SafeName(got); again != got {
		t.Fatalf("SafeName not idempotent: %q -> %q -> %q", in, got, again)
	}
}

func TestHashFileCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	os.WriteFile(path, vectorBytes(5*PieceLength), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := HashFile(ctx, path, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	var total int64
	info, err := HashFile(context.Background(), path, func(n int64) { total += n })
	if err != nil || total != 5*PieceLength || info.FileName != "f" {
		t.Fatalf("err %v, progress %d, info %+v", err, total, info)
	}
	if _, err := HashFile(context.Background(), t.TempDir(), nil); err == nil {
		t.Fatal("hashing a directory succeeded")
	}
}

func FuzzParseInfo(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add([]byte(v.InfoDictionaryJSON))
	}
	f.Add([]byte(`{"full_hash":"9842926af7ca0a8cca12604f945414f07b01e13d","file_name":"../x","pieces_length":200000,"pieces_amount":1,"total_length":1,"piece_hashes":["9842926af7ca0a8cca12604f945414f07b01e13d"],"x":[{}]}`))
	f.Add([]byte(`{"file_name":"a","file_name":"b"}`))
	f.Add([]byte(`{"pieces_length":1e400}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ParseInfo(data)
		if err != nil {
			if info != nil {
				t.Fatal("info and error both returned")
			}
			return
		}
		if err := info.Validate(); err != nil {
			t.Fatalf("accepted info fails Validate: %v", err)
		}
		checkSafe(t, "", info.FileName)
		b, _ := info.MarshalJSON()
		again, err := ParseInfo(b)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		b2, _ := again.MarshalJSON()
		if !bytes.Equal(b, b2) {
			t.Fatalf("marshal not stable: %s vs %s", b, b2)
		}
	})
}

func FuzzSafeName(f *testing.F) {
	for _, s := range []string{"../../etc/passwd", "a/b", "..", ".", "", "con\x00trol", "\\windows\\path", strings.Repeat("é", 200) + ".txt"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkSafe(t, s, SafeName(s)) })
}

// widenRef is the obvious definition: each byte as a code point, in UTF-8.
func widenRef(src []byte) []byte {
	var out []byte
	for _, b := range src {
		out = utf8.AppendRune(out, rune(b))
	}
	return out
}

// FuzzWiden checks the SIMD path (where present) and the portable path
// against the definition, at every length and mix of bytes.
func FuzzWiden(f *testing.F) {
	f.Add([]byte("plain ascii, longer than sixteen bytes"))
	f.Add(vectorBytes(100))
	f.Add(bytes.Repeat([]byte{0xff, 0x7f, 0x80, 0x00, 0xc0, 0x3f}, 11))
	f.Fuzz(func(t *testing.T, src []byte) {
		want := widenRef(src)
		dst := make([]byte, 2*len(src)+16)
		if got := widen(dst, src); !bytes.Equal(got, want) {
			t.Fatalf("widen(%x) = %x, want %x", src, got, want)
		}
		clear(dst)
		if got := widenGo(dst, src, 0, 0); !bytes.Equal(got, want) {
			t.Fatalf("widenGo(%x) = %x, want %x", src, got, want)
		}
	})
}
