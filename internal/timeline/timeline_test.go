package timeline

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFirstMarkWins(t *testing.T) {
	tl := New(time.Now())
	ctx := NewContext(context.Background(), tl)
	Mark(ctx, "a")
	time.Sleep(2 * time.Millisecond)
	Mark(ctx, "b")
	Mark(ctx, "a")
	steps := tl.Steps()
	if len(steps) != 2 || steps[0].Name != "a" || steps[1].Name != "b" {
		t.Fatalf("steps %+v, want a then b once each", steps)
	}
	if steps[1].At <= steps[0].At {
		t.Errorf("b at %v, not after a at %v", steps[1].At, steps[0].At)
	}
	var sb strings.Builder
	if _, err := tl.WriteTo(&sb); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(sb.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "timeline") || !strings.HasSuffix(lines[1], " b") {
		t.Errorf("table:\n%s", sb.String())
	}
}

func TestWithoutTimeline(t *testing.T) {
	Mark(context.Background(), "nothing happens")
	var tl *Timeline
	tl.Mark("x")
	if tl.Steps() != nil {
		t.Error("a nil timeline has steps")
	}
}

func TestBounded(t *testing.T) {
	tl := New(time.Now())
	var wg sync.WaitGroup
	for i := range 4 * MaxSteps {
		wg.Go(func() { tl.Mark(string(rune('A' + i))) })
	}
	wg.Wait()
	if n := len(tl.Steps()); n != MaxSteps {
		t.Errorf("%d steps kept, want the bound %d", n, MaxSteps)
	}
}
