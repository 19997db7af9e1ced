package main

import (
	"errors"
	"log/slog"
	"testing"
)

func TestUserHandler(t *testing.T) {
	var lines []string
	log := slog.New(newUserHandler(func(s string) { lines = append(lines, s) })).With("mediator", "ws://m")
	log.Debug("not shown")
	log.Info("not shown either")
	log.Warn("lost connection, retrying", "in", "1s", "err", errors.New("connection refused"))
	log.Error("stopped")
	log.WithGroup("g").Warn("grouped", "k", 1)
	want := []string{
		"p2pcdn: lost connection, retrying (mediator=ws://m, in=1s): connection refused",
		"p2pcdn: error: stopped (mediator=ws://m)",
		"p2pcdn: grouped (mediator=ws://m, g.k=1)",
	}
	if len(lines) != len(want) {
		t.Fatalf("printed %q, want %q", lines, want)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d: %q, want %q", i, lines[i], want[i])
		}
	}
}
