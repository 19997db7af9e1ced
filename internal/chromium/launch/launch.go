// Package launch is how p2pcdn starts headless Chromium: where the binary is and the command-line flags that
// keep it on loopback. It is shared by the browser tests (package chromium) and the bench program, so it must
// not import "testing".
//
// The flags: no QUIC, no background traffic, every host name except 127.0.0.1 resolves to nothing, and WebRTC
// may gather a loopback candidate (the tests run in a namespace whose only network is lo).
package launch

import (
	"context"
	"fmt"
	"os"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// DefaultPath is where Debian's chromium package installs the browser.
const DefaultPath = "/usr/bin/chromium"

// Path is $P2PCDN_CHROMIUM when set, else fallback.
func Path(fallback string) string {
	if env := os.Getenv("P2PCDN_CHROMIUM"); env != "" {
		return env
	}
	return fallback
}

// AllocatorOptions are the chromedp allocator options for a headless, loopback-only Chromium at path that keeps
// its profile in userDataDir. Callers may append more (a window size, say).
func AllocatorOptions(path, userDataDir string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(userDataDir),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// Several tabs take part in one transfer; none may be throttled as "hidden".
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns,Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
	}
}

// GrantCapturePermissions grants camera and microphone to every page of the browser behind ctx. With them
// Chromium gathers host candidates on every interface, loopback included, instead of only the default route.
func GrantCapturePermissions(ctx context.Context) error {
	for _, name := range []string{"camera", "microphone"} {
		_, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name},
			Setting:    browser.PermissionSettingGranted,
		})
		if err != nil {
			return fmt.Errorf("granting %s permission: %w", name, err)
		}
	}
	return nil
}
