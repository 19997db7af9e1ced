// Package termstatus keeps one status line at the bottom of a terminal,
// redrawn in place, and prints ordinary lines above it: progress that does
// not scroll, and output that does.
//
// On anything but a terminal a Line draws nothing: Set is a no-op and
// Println writes straight through, so logs and pipes get plain lines only.
package termstatus

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"
)

// redrawEvery throttles redraws: a terminal cannot show more anyway.
const redrawEvery = 100 * time.Millisecond

// Line is the status line of one terminal. Its methods are safe for
// concurrent use; the zero value is not usable, use New.
type Line struct {
	mu     sync.Mutex
	w      io.Writer
	fd     int
	tty    bool
	text   string
	shown  bool // the status is on the screen
	drawn  time.Time
	closed bool
}

// New returns the status line of f, inert when f is not a terminal (or nil).
func New(f *os.File) *Line {
	if f == nil {
		return &Line{}
	}
	return &Line{w: f, fd: int(f.Fd()), tty: term.IsTerminal(int(f.Fd()))}
}

// Active reports whether the line is drawn (f is a terminal).
func (l *Line) Active() bool { return l.tty }

// Set replaces the status text, redrawing at most ten times a second.
func (l *Line) Set(format string, args ...any) {
	if !l.tty {
		return
	}
	text := fmt.Sprintf(format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.text = text
	if time.Since(l.drawn) >= redrawEvery {
		l.drawLocked()
	}
}

// Println prints s and a newline on w above the status line. w is usually
// stdout, sharing the terminal with the status on stderr.
func (l *Line) Println(w io.Writer, s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clearLocked()
	fmt.Fprintln(w, s)
	if l.text != "" && !l.closed {
		l.drawLocked()
	}
}

// Clear removes the status line for good (until the next Set).
func (l *Line) Clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clearLocked()
	l.text = ""
}

// Close clears the line; later calls draw nothing.
func (l *Line) Close() {
	l.Clear()
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
}

func (l *Line) clearLocked() {
	if l.shown {
		io.WriteString(l.w, "\r\x1b[K")
		l.shown = false
	}
}

func (l *Line) drawLocked() {
	width := 80
	if w, _, err := term.GetSize(l.fd); err == nil && w > 0 {
		width = w
	}
	// One character short of the width: a full line would wrap on some
	// terminals, and the next \r would then redraw below it.
	io.WriteString(l.w, "\r"+Truncate(l.text, width-1)+"\x1b[K")
	l.shown = true
	l.drawn = time.Now()
}

// Truncate cuts s to at most n characters, ending in "…" when cut.
func Truncate(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	var b strings.Builder
	i := 0
	for _, r := range s {
		if i == n-1 {
			break
		}
		b.WriteRune(r)
		i++
	}
	b.WriteString("…")
	return b.String()
}
