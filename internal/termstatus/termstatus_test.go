package termstatus

import (
	"os"
	"strings"
	"testing"
)

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 5, "hello"},
		{"hello world", 5, "hell…"},
		{"ünïcödé", 4, "ünï…"},
		{"x", 0, ""},
	} {
		if got := Truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// TestInertOffTerminal: on a file (not a terminal) Set draws nothing and
// Println writes plain lines.
func TestInertOffTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l := New(f)
	if l.Active() {
		t.Fatal("a file counted as a terminal")
	}
	l.Set("hashing %d", 1)
	l.Println(f, "a line")
	l.Clear()
	l.Close()
	data, _ := os.ReadFile(f.Name())
	if string(data) != "a line\n" || strings.Contains(string(data), "\r") {
		t.Fatalf("wrote %q, want the plain line only", data)
	}
	New(nil).Set("nothing") // nil is inert too
}
