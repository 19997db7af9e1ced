package web

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
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

// pageRect is an element's box in document coordinates (CSS pixels, which
// are screenshot pixels at a device scale of 1).
type pageRect struct{ X, Y, W, H int }

const rectJS = `((el) => { const r = el.getBoundingClientRect(); return {X: Math.round(r.left + scrollX), Y: Math.round(r.top + scrollY), W: Math.round(r.width), H: Math.round(r.height)}; })(document.getElementById("preview"))`

// shot takes a full-page screenshot at 1280×800, saves it and decodes it.
func shot(t *testing.T, tab context.Context, dir, name string) image.Image {
	t.Helper()
	screenshot(t, tab, dir, name, 1280, 800)
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// distinctShare is the share of distinct colours among the pixels of r in
// img: near 1 where the noise image is drawn, small for page text and
// backgrounds.
func distinctShare(img image.Image, r pageRect) float64 {
	seen := map[color.RGBA]bool{}
	n := 0
	for y := r.Y; y < r.Y+r.H; y++ {
		for x := r.X; x < r.X+r.W; x++ {
			if !(image.Point{x, y}.In(img.Bounds())) {
				continue
			}
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			seen[c] = true
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return float64(len(seen)) / float64(n)
}

// TestDemoPageFetchSequence fetches an image, then a text file, then a hash
// nobody has, on one demo page, picking the first from the list of what the
// mediator's seeders offer. The image preview must be gone (computed style
// and the pixels of a screenshot) once the text file is shown, and no
// stats line of an earlier fetch may stay during the next one.
func TestDemoPageFetchSequence(t *testing.T) {
	m := startMediator(t)
	dir := artifactDir(t)
	files := t.TempDir()
	pic, txt := filepath.Join(files, "landscape.png"), filepath.Join(files, "notes.txt")
	if err := os.WriteFile(pic, noisePNG(t), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(txt, bytes.Repeat([]byte("p2pcdn demo notes\n"), 2000), 0o644); err != nil {
		t.Fatal(err)
	}

	b := chromium.New(t)
	a, c := b.Tab(), b.NewTab()
	navigate(t, a, m.URL()+"/")
	ctx, cancel := context.WithTimeout(a, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.CSS("#pick"), []string{pic, txt})); err != nil {
		t.Fatalf("choosing files: %v", err)
	}
	waitFor(t, a, "both files shared", `document.querySelectorAll(".file[data-hash]").length === 2`)
	hashOf := func(name string) string {
		return eval[string](t, a, fmt.Sprintf(`[...document.querySelectorAll(".file[data-hash]")].find((c) => c.textContent.includes(%q)).dataset.hash`, name))
	}
	picHash, txtHash := hashOf("landscape.png"), hashOf("notes.txt")
	// The mediator caches its list for 2 s: Refresh until it has both.
	const listed = `(document.querySelectorAll("#offered li").length === 2 || (document.getElementById("refresh").click(), false))`
	waitFor(t, a, "the seeder's list marks its own files", listed+` && document.getElementById("offered").textContent.includes("this tab")`)

	navigate(t, c, m.URL()+"/")
	if s := eval[string](t, c, `document.body.textContent`); !strings.Contains(s, m.URL()+"/#<full hash>") {
		t.Errorf("the page does not explain its share links (%s/#<full hash>)", m.URL())
	}
	waitFor(t, c, "the list of offered files", listed)
	if s := eval[string](t, c, `document.getElementById("offeredinfo").textContent`); !strings.Contains(s, "2 files offered") {
		t.Errorf("list heading = %q", s)
	}
	cctx, ccancel := context.WithTimeout(c, timeout)
	defer ccancel()
	if err := chromedp.Do(cctx, chromedp.Click(fmt.Sprintf(`#offered li[data-hash="%s"] button`, picHash))); err != nil {
		t.Fatalf("clicking the image in the list: %v", err)
	}
	done := `document.getElementById("status").dataset.state === "done"`
	waitFor(t, c, "the image", done+` && document.getElementById("status").textContent.includes("landscape.png")`)
	if !eval[bool](t, c, `document.getElementById("preview").decode().then(() => document.getElementById("preview").checkVisibility())`) {
		t.Fatal("the fetched image's preview is not visible")
	}
	if s := eval[string](t, c, `document.getElementById("sharelink").textContent`); s != m.URL()+"/#"+picHash {
		t.Errorf("share link = %q, want %s/#%s", s, m.URL(), picHash)
	}
	r := eval[pageRect](t, c, rectJS)
	before := distinctShare(shot(t, c, dir, "demo-image.png"), r)

	eval[bool](t, c, fmt.Sprintf(`document.getElementById("hash").value = %q; document.getElementById("go").click(); true`, txtHash))
	waitFor(t, c, "the text file", done+` && document.getElementById("status").textContent.includes("notes.txt")`)
	st := eval[map[string]any](t, c, `(() => { const p = document.getElementById("preview"), cs = getComputedStyle(p);
		return {visible: p.checkVisibility(), display: cs.display, height: p.getBoundingClientRect().height, save: document.getElementById("save").download}; })()`)
	if st["visible"] != false || st["display"] != "none" || st["height"] != 0.0 {
		t.Errorf("after fetching a text file the image preview is still shown: %v", st)
	}
	if st["save"] != "notes.txt" {
		t.Errorf("save button downloads %v, want notes.txt", st["save"])
	}
	after := distinctShare(shot(t, c, dir, "demo-text-after-image.png"), r)
	t.Logf("distinct colours where the preview was: %.2f with the image, %.2f after the text file", before, after)
	if before < 0.5 {
		t.Errorf("the screenshot with the image shows no image where the preview is (%.2f distinct colours)", before)
	}
	if after > 0.1 {
		t.Errorf("the screenshot after the text file still shows the image where the preview was (%.2f distinct colours)", after)
	}

	// The next fetch (of a hash nobody has) starts clean: no stats line or
	// result of the last one while it looks for peers.
	if s := eval[string](t, c, `document.getElementById("stats").textContent`); s == "" {
		t.Fatal("the finished fetch left no stats line; the next check would prove nothing")
	}
	next := eval[map[string]any](t, c, `document.getElementById("hash").value = "ab".repeat(20); document.getElementById("go").click();
		({state: document.getElementById("status").dataset.state, stats: document.getElementById("stats").textContent,
		  result: document.getElementById("result").checkVisibility()})`)
	if next["state"] != "fetching" || next["stats"] != "" || next["result"] != false {
		t.Errorf("while the next fetch looks for peers: %v, want fetching with no stats line and no result", next)
	}
	screenshot(t, c, dir, "demo-next-fetch.png", 1280, 800)
}

// TestDemoPageWithoutHashList: behind a mediator that has no GET /hashes
// (the prototype's), the page says so and works otherwise. A proxy in front
// of our mediator hides the route.
func TestDemoPageWithoutHashList(t *testing.T) {
	m := startMediator(t)
	target, err := url.Parse(m.URL())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hashes" {
			http.NotFound(w, r)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close) // after the browser's cleanup, which ends the pages' long-polls

	b := chromium.New(t)
	c := b.Tab()
	navigate(t, c, proxy.URL+"/")
	waitFor(t, c, "the note on the missing list", `document.getElementById("offeredinfo").textContent.includes("does not list")`)
	waitFor(t, c, "the mediator connection", `document.getElementById("conn").textContent.startsWith("Connected")`)
	if n := eval[int](t, c, `document.querySelectorAll("#offered li").length`); n != 0 {
		t.Errorf("%d entries listed without a list", n)
	}
	screenshot(t, c, artifactDir(t), "demo-no-list.png", 390, 844)
}
