package web

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/p2pcdn/p2pcdn/internal/chromium"
)

// artifactDir is where screenshots go: $P2PCDN_ARTIFACTS when set, else a
// temporary directory that is logged.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("P2PCDN_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func screenshot(t *testing.T, tab context.Context, dir, name string, w, h int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(w, h)); err != nil {
		t.Fatal(err)
	}
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// noisePNG is an image big enough to span several pieces.
func noisePNG(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 640, 400))
	r := rand.New(rand.NewPCG(1, 2))
	for y := 0; y < 400; y++ {
		for x := 0; x < 640; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 255 / 640), uint8(r.IntN(256)), uint8(y * 255 / 400), 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestDemoPage shares a file through the demo page's file picker and opens
// its shareable link in another tab, which fetches it and shows completion.
func TestDemoPage(t *testing.T) {
	m := startMediator(t)
	dir := artifactDir(t)
	file := filepath.Join(t.TempDir(), "landscape.png")
	data := noisePNG(t)
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}

	b := chromium.New(t)
	a, c := b.Tab(), b.NewTab()
	navigate(t, a, m.URL()+"/")
	ctx, cancel := context.WithTimeout(a, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.CSS("#pick"), []string{file})); err != nil {
		t.Fatalf("choosing a file: %v", err)
	}
	waitFor(t, a, "the shared file's hash", `document.querySelector(".file[data-hash]")`)
	hash := eval[string](t, a, `document.querySelector(".file[data-hash]").dataset.hash`)
	card := eval[string](t, a, `document.querySelector(".file[data-hash]").textContent`)
	for _, want := range []string{"landscape.png", hash, "/#" + hash, "p2pcdn get --mediator ws://" + m.addr + " " + hash} {
		if !strings.Contains(card, want) {
			t.Errorf("shared file card lacks %q: %s", want, card)
		}
	}

	navigate(t, c, m.URL()+"/#"+hash)
	waitFor(t, c, "the demo page to finish", `document.getElementById("status").dataset.state !== "fetching" && document.getElementById("status").dataset.state !== "idle"`)
	state := eval[string](t, c, `document.getElementById("status").dataset.state + " " + document.getElementById("status").textContent`)
	if !strings.HasPrefix(state, "done ") || !strings.Contains(state, "Complete") {
		t.Fatalf("status = %q, want done / Complete", state)
	}
	size := eval[int](t, c, `fetch(document.getElementById("save").href).then((r) => r.blob()).then((b) => b.size)`)
	if size != len(data) {
		t.Errorf("saved file has %d bytes, want %d", size, len(data))
	}
	if w := eval[int](t, c, `document.getElementById("preview").decode().then(() => document.getElementById("preview").naturalWidth)`); w != 640 {
		t.Errorf("preview width %d, want 640", w)
	}
	waitFor(t, a, "the connection line", `document.getElementById("conn").textContent.includes("over websocket")`)
	for _, v := range []struct {
		w, h int64
		tag  string
	}{{1280, 800, "desktop"}, {390, 844, "phone"}} {
		screenshot(t, c, dir, fmt.Sprintf("demo-fetched-%s.png", v.tag), v.w, v.h)
		screenshot(t, a, dir, fmt.Sprintf("demo-shared-%s.png", v.tag), v.w, v.h)
	}
}
