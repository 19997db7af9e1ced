package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// userHandler prints the warnings and errors seed and get log at their
// default verbosity as the rest of their messages read: one line,
// "p2pcdn: what happened (details): cause", without the time and level
// fields of a developer's log (--verbose keeps those). print writes a line
// above the status line, so the two never garble each other.
type userHandler struct {
	print func(string)
	attrs []slog.Attr
	group string
	mu    *sync.Mutex
}

func newUserHandler(print func(string)) *userHandler {
	return &userHandler{print: print, mu: &sync.Mutex{}}
}

func (h *userHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *userHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString("p2pcdn: ")
	if r.Level >= slog.LevelError {
		b.WriteString("error: ")
	}
	b.WriteString(r.Message)
	var details []string
	var cause string
	add := func(a slog.Attr) bool {
		a.Value = a.Value.Resolve()
		if a.Equal(slog.Attr{}) {
			return true
		}
		if a.Key == "err" && cause == "" {
			cause = a.Value.String()
			return true
		}
		details = append(details, a.Key+"="+a.Value.String())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(func(a slog.Attr) bool { return add(h.grouped(a)) })
	if len(details) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(details, ", "))
	}
	if cause != "" {
		b.WriteString(": " + cause)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.print(b.String())
	return nil
}

// grouped names a with the handler's group.
func (h *userHandler) grouped(a slog.Attr) slog.Attr {
	if h.group != "" {
		a.Key = h.group + "." + a.Key
	}
	return a
}

func (h *userHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append([]slog.Attr(nil), h.attrs...)
	for _, a := range as {
		c.attrs = append(c.attrs, h.grouped(a))
	}
	return &c
}

func (h *userHandler) WithGroup(name string) slog.Handler {
	c := *h
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}
