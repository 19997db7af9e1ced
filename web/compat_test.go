package web

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/p2pcdn/p2pcdn/internal/chromium"
)

// makePNG draws noise on a canvas (so the PNG spans several pieces) and
// returns it as a File named pic.png in window.pic.
const makePNG = `(async () => {
	const c = document.createElement('canvas'); c.width = 320; c.height = 320;
	const g = c.getContext('2d'), img = g.createImageData(320, 320);
	for (let i = 0; i < img.data.length; i++) img.data[i] = i % 4 === 3 ? 255 : Math.random() * 256;
	g.putImageData(img, 0, 0);
	const blob = await new Promise((r) => c.toBlob(r, 'image/png'));
	window.pic = new File([blob], 'pic.png', {type: 'image/png'});
	return blob.size; })()`

// TestCompatAPI drives only the prototype's global API: page A seeds with
// cdn.seedFile, page B includes the image with initialize/includeImages and
// caches it; after a reload with no seeder left, B serves it from IndexedDB
// and re-seeds it to page C.
func TestCompatAPI(t *testing.T) {
	m := startMediator(t)
	host, port, _ := strings.Cut(m.addr, ":")
	b := chromium.New(t)
	a, pb := b.Tab(), b.NewTab()
	navigate(t, a, m.URL()+"/test.html")
	navigate(t, pb, m.URL()+"/test.html")

	if size := eval[int](t, a, makePNG); size <= 200000 {
		t.Fatalf("test image is only %d bytes; want several pieces", size)
	}
	info := eval[string](t, a, fmt.Sprintf(`new Promise((resolve) => {
		cdn.overrideICECandidates([]);
		cdn.seedFile(window.pic, %q, %s, (info) => resolve(JSON.stringify(info)));
	})`, host, port))
	if !strings.HasPrefix(info, `{"full_hash":"`) || !strings.Contains(info, `"file_name":"pic.png"`) {
		t.Fatalf("seedFile callback got %s", info)
	}

	initialize := fmt.Sprintf(`cdn.overrideICECandidates([]);
		cdn.initialize([%s], %q, %s, true);`, info, host, port)
	threw := eval[bool](t, pb, initialize+`
		let threw = false;
		try { cdn.includeImages(["pic.png"], ["#img", "#dl"]); } catch (e) { threw = true; }
		threw`)
	if !threw {
		t.Errorf("includeImages with lists of different lengths did not throw")
	}
	eval[bool](t, pb, `window.done = false;
		cdn.onFileDownloaded("pic.png", () => { window.done = true; });
		cdn.includeImages(["pic.png"], ["#img"]); true`)
	waitFor(t, pb, "onFileDownloaded callback", `window.done`)
	src := eval[string](t, pb, `document.getElementById("img").src`)
	if !strings.HasPrefix(src, "blob:") {
		t.Fatalf("img src = %q, want a blob: URL", src)
	}
	if w := eval[int](t, pb, `document.getElementById("img").decode().then(() => document.getElementById("img").naturalWidth)`); w != 320 {
		t.Errorf("fetched image decodes to width %d, want 320", w)
	}

	// The seeder leaves; B reloads and must get the file from its cache.
	navigate(t, a, "about:blank")
	navigate(t, pb, m.URL()+"/test.html")
	eval[bool](t, pb, initialize+`
		window.done = false;
		cdn.onFileDownloaded("pic.png", () => { window.done = true; });
		cdn.includeDownloads(["pic.png"], ["#dl"]); true`)
	waitFor(t, pb, "download from the cache", `window.done`)
	wrapped := eval[bool](t, pb, `(() => { const a = document.getElementById("dl").parentElement;
		return a.tagName === "A" && a.download === "pic.png" && a.href.startsWith("blob:"); })()`)
	if !wrapped {
		t.Errorf("includeDownloads did not wrap the element in <a download=pic.png href=blob:>")
	}

	// B re-seeds the cached file: a third page fetches it from B alone.
	pc := b.NewTab()
	navigate(t, pc, m.URL()+"/test.html")
	hash := info[len(`{"full_hash":"`) : len(`{"full_hash":"`)+40]
	size := eval[int](t, pc, fmt.Sprintf(`(async () => {
		const node = await p2pcdn.connect({iceServers: []});
		return (await node.fetch(%q)).size; })()`, hash))
	var parsed struct {
		TotalLength int `json:"total_length"`
	}
	if err := json.Unmarshal([]byte(info), &parsed); err != nil {
		t.Fatal(err)
	}
	if size != parsed.TotalLength {
		t.Errorf("re-seeded fetch gave %d bytes, want %d", size, parsed.TotalLength)
	}
}
