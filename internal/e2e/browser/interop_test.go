package browser

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

// TestPageSeedsNativeGets: a page seeds a generated Blob, `p2pcdn get` knows
// only the hash, so it fetches the info dictionary from the page over
// p2pcdn_info, then the pieces.
func TestPageSeedsNativeGets(t *testing.T) {
	m := startMediator(t)
	b := chromium.New(t)
	tab := b.Tab()
	navigate(t, tab, m.page("/test.html"))

	const size = 1500000 // 8 pieces, the last one short
	got := eval[map[string]any](t, tab, fmt.Sprintf(`(async () => { %s %s
		window.node = await p2pcdn.connect({iceServers: []});
		const blob = randomBlob(%d);
		const info = await node.seed(blob, {name: "from-page.bin"});
		return {hash: info.full_hash, sum: await sha256hex(blob)}; })()`, sha256JS, randomBlobJS, size))
	hash, _ := got["hash"].(string)
	want, _ := got["sum"].(string)

	out := t.TempDir()
	s := runGet(t, m, out, hash)
	if s.FullHash != hash || s.FileName != "from-page.bin" || s.TotalLength != size {
		t.Errorf("get summary = %+v, want hash %s, name from-page.bin, %d bytes", s, hash, size)
	}
	path := filepath.Join(out, "from-page.bin")
	if s.Path != path {
		t.Errorf("get wrote %s, want %s", s.Path, path)
	}
	if sum := fileSHA256(t, path); sum != want {
		t.Fatalf("file fetched by p2pcdn get has SHA-256 %s, the page seeded %s", sum, want)
	}
}

// TestNativeSeedsPageFetches: `p2pcdn seed` serves a directory; a page that
// knows only one file's hash fetches it. The page's downloader sends its
// extended handshake first and its bitfield only once it has the info
// dictionary, so this also checks that the native seeder accepts that order.
func TestNativeSeedsPageFetches(t *testing.T) {
	m := startMediator(t)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{ // by file_name, which is the base name
		"a.bin": writeRandom(t, filepath.Join(dir, "a.bin"), 1000000, 1),       // exactly 5 pieces
		"b.bin": writeRandom(t, filepath.Join(dir, "sub", "b.bin"), 777777, 2), // last piece short
	}
	s := startSeeder(t, m, dir)
	if len(s.infos) != 2 {
		t.Fatalf("seeder printed %d dictionaries, want 2", len(s.infos))
	}

	b := chromium.New(t)
	tab := b.Tab()
	navigate(t, tab, m.page("/test.html"))
	eval[bool](t, tab, `p2pcdn.connect({iceServers: []}).then((n) => { window.node = n; return true; })`)
	for _, in := range s.infos {
		got := eval[map[string]any](t, tab, fmt.Sprintf(`(async () => { %s
			const blob = await node.fetch(%q);
			return {sum: await sha256hex(blob), size: blob.size, name: node.infoOf(%[2]q).file_name}; })()`, sha256JS, in.FullHash))
		want := sums[in.FileName]
		if want == "" {
			t.Fatalf("seeder announced %q, which is not one of the files", in.FileName)
		}
		if got["sum"] != want {
			t.Fatalf("%s: the page fetched %v bytes with SHA-256 %v, want %s", in.FileName, got["size"], got["sum"], want)
		}
		if got["size"] != float64(in.TotalLength) || got["name"] != in.FileName {
			t.Errorf("%s: page has size %v name %v, want %d %s", in.FileName, got["size"], got["name"], in.TotalLength, in.FileName)
		}
	}
}

// noisePNG is an image big enough to span several pieces.
func noisePNG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(1, 2))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(r.IntN(256)), uint8(y * 255 / h), 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestCompatAPIFromNativeSeeder drives only the prototype's global API in a
// page: cdn.initialize with the dictionaries `p2pcdn seed --json` printed,
// then includeImages and includeDownloads, with onFileDownloaded callbacks.
func TestCompatAPIFromNativeSeeder(t *testing.T) {
	m := startMediator(t)
	dir := t.TempDir()
	pic := noisePNG(t, 480, 320)
	if len(pic) <= 200000 {
		t.Fatalf("test image is only %d bytes; want several pieces", len(pic))
	}
	if err := os.WriteFile(filepath.Join(dir, "pic.png"), pic, 0o644); err != nil {
		t.Fatal(err)
	}
	manual := writeRandom(t, filepath.Join(dir, "manual.bin"), 300001, 3)
	s := startSeeder(t, m, dir)
	s.info("pic.png")
	s.info("manual.bin")

	b := chromium.New(t)
	tab := b.Tab()
	navigate(t, tab, m.page("/test.html"))
	host, port, _ := strings.Cut(m.addr, ":")
	eval[bool](t, tab, fmt.Sprintf(`window.done = {};
		cdn.overrideICECandidates([]);
		cdn.initialize([%s, %s], %q, %s, false);
		cdn.onFileDownloaded("pic.png", () => { window.done.pic = true; });
		cdn.onFileDownloaded("manual.bin", () => { window.done.manual = true; });
		cdn.includeImages(["pic.png"], ["#img"]);
		cdn.includeDownloads(["manual.bin"], ["#dl"]);
		true`, s.raw["pic.png"], s.raw["manual.bin"], host, port))
	waitFor(t, tab, "both onFileDownloaded callbacks", `window.done.pic && window.done.manual`)

	src := eval[string](t, tab, `document.getElementById("img").src`)
	if !strings.HasPrefix(src, "blob:") {
		t.Fatalf("img src = %q, want a blob: URL", src)
	}
	if w := eval[int](t, tab, `document.getElementById("img").decode().then(() => document.getElementById("img").naturalWidth)`); w != 480 {
		t.Errorf("fetched image decodes to width %d, want 480", w)
	}
	link := eval[map[string]any](t, tab, `(async () => { `+sha256JS+`
		const a = document.getElementById("dl").parentElement;
		if (a.tagName !== "A") return {tag: a.tagName};
		return {tag: a.tagName, download: a.download, href: a.href, sum: await sha256hex(await (await fetch(a.href)).blob())}; })()`)
	if link["tag"] != "A" || link["download"] != "manual.bin" || !strings.HasPrefix(fmt.Sprint(link["href"]), "blob:") {
		t.Fatalf("includeDownloads did not wrap #dl in <a download=manual.bin href=blob:…>: %v", link)
	}
	if link["sum"] != manual {
		t.Errorf("the download link's bytes have SHA-256 %v, want %s", link["sum"], manual)
	}
	imgSum := eval[string](t, tab, `(async () => { `+sha256JS+` return sha256hex(await (await fetch(document.getElementById("img").src)).blob()); })()`)
	if imgSum != fileSHA256(t, filepath.Join(dir, "pic.png")) {
		t.Errorf("the image's bytes differ from the seeded file")
	}
}

// TestDemoPageFetchesFromNativeSeeder opens the demo page the mediator serves
// at /#<hash>, waits for it to fetch the file from `p2pcdn seed`, checks it
// shows completion and keeps a screenshot.
func TestDemoPageFetchesFromNativeSeeder(t *testing.T) {
	m := startMediator(t)
	artifacts := artifactDir(t)
	dir := t.TempDir()
	pic := noisePNG(t, 640, 400)
	if err := os.WriteFile(filepath.Join(dir, "landscape.png"), pic, 0o644); err != nil {
		t.Fatal(err)
	}
	s := startSeeder(t, m, dir)
	hash := s.info("landscape.png").FullHash

	b := chromium.New(t)
	tab := b.Tab()
	navigate(t, tab, m.page("/#"+hash))
	waitFor(t, tab, "the demo page to finish", `["done", "error"].includes(document.getElementById("status").dataset.state)`)
	state := eval[string](t, tab, `document.getElementById("status").dataset.state + " " + document.getElementById("status").textContent`)
	if !strings.HasPrefix(state, "done ") || !strings.Contains(state, "landscape.png") {
		t.Fatalf("status = %q, want done with the file's name", state)
	}
	size := eval[int](t, tab, `fetch(document.getElementById("save").href).then((r) => r.blob()).then((b) => b.size)`)
	if size != len(pic) {
		t.Errorf("the save link holds %d bytes, want %d", size, len(pic))
	}
	if w := eval[int](t, tab, `document.getElementById("preview").decode().then(() => document.getElementById("preview").naturalWidth)`); w != 640 {
		t.Errorf("preview width %d, want 640", w)
	}

	ctx, cancel := context.WithTimeout(tab, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if _, err := png.DecodeConfig(bytes.NewReader(shot)); err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	path := filepath.Join(artifacts, "demo-fetched-from-native.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// TestPageResharesToNative: a page fetches a file from `p2pcdn seed`, the
// seeder goes away, and `p2pcdn get` then fetches the file from the page
// alone (pages re-share what they fetched while they stay open).
func TestPageResharesToNative(t *testing.T) {
	m := startMediator(t)
	dir := t.TempDir()
	want := writeRandom(t, filepath.Join(dir, "relay.bin"), 650000, 4)
	s := startSeeder(t, m, dir)
	hash := s.info("relay.bin").FullHash

	b := chromium.New(t)
	tab := b.Tab()
	navigate(t, tab, m.page("/test.html"))
	got := eval[string](t, tab, fmt.Sprintf(`(async () => { %s
		window.node = await p2pcdn.connect({iceServers: []});
		return sha256hex(await node.fetch(%q)); })()`, sha256JS, hash))
	if got != want {
		t.Fatalf("the page fetched bytes with SHA-256 %s, want %s", got, want)
	}
	s.Kill()

	out := t.TempDir()
	sum := runGet(t, m, out, hash)
	if sum.Peers != 1 {
		t.Errorf("get used %d peers, want 1 (the page)", sum.Peers)
	}
	if h := fileSHA256(t, filepath.Join(out, "relay.bin")); h != want {
		t.Fatalf("file fetched from the page has SHA-256 %s, want %s", h, want)
	}
}
