package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The browser tests render /ui in Debian's chromium, driven through its
// command line (--dump-dom and --screenshot) rather than the DevTools
// protocol, so the module needs no browser-automation dependency.

// chromiumBinary is the launcher Debian's chromium package installs.
const chromiumBinary = "chromium"

// aptLock serialises apt-get between test processes (go test runs
// packages in parallel, and dpkg's own lock fails rather than waits).
const aptLock = "/tmp/interlock-apt.lock"

var (
	chromiumOnce sync.Once
	chromiumPath string
	chromiumErr  error
)

// chromium returns the path of the chromium binary, installing Debian's
// chromium package if it is missing. It skips the test only where the
// package cannot be installed (not root, no apt-get, no package source).
func chromium(t *testing.T) string {
	t.Helper()
	chromiumOnce.Do(func() {
		chromiumPath, chromiumErr = findOrInstallChromium()
	})
	if chromiumErr != nil {
		t.Skipf("headless Chromium is needed to render /ui and could not be installed "+
			"(apt-get install -y --no-install-recommends chromium): %v", chromiumErr)
	}
	return chromiumPath
}

func findOrInstallChromium() (string, error) {
	if p, err := exec.LookPath(chromiumBinary); err == nil {
		return p, nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", errors.New("no apt-get on this machine")
	}
	if os.Geteuid() != 0 {
		return "", errors.New("not root, so apt-get cannot install packages")
	}
	lock, err := os.OpenFile(aptLock, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", aptLock, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", aptLock, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it too
	// Another test process may have installed it while this one waited.
	if p, err := exec.LookPath(chromiumBinary); err == nil {
		return p, nil
	}
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{
		{"update"},
		{"install", "-y", "--no-install-recommends", "chromium"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			return "", fmt.Errorf("apt-get %s: %w\n%s", args[0], err, tail(out, 2000))
		}
	}
	return exec.LookPath(chromiumBinary)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// browserRun is one headless Chromium invocation on url.
type browserRun struct {
	url           string
	width, height int
	// budget is the virtual time the page gets before the DOM is dumped or
	// the screenshot taken; timers run in virtual time, and it stands still
	// while a fetch is in flight, so the page's 2 s refresh runs
	// budget/2 s times however slow the machine is.
	budget time.Duration
	// screenshot, if set, is where a PNG goes instead of dumping the DOM.
	screenshot string
}

// render runs Chromium and returns what it printed on stdout: the
// serialised DOM, or nothing for a screenshot.
func render(t *testing.T, r browserRun) string {
	t.Helper()
	bin := chromium(t)
	profile := t.TempDir()
	args := []string{
		"--headless", "--disable-gpu", "--no-sandbox", // the tests run as root
		"--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
		"--disable-extensions", "--disable-sync", "--hide-scrollbars", "--mute-audio",
		"--user-data-dir=" + profile,
		"--window-size=" + strconv.Itoa(r.width) + "," + strconv.Itoa(r.height),
		"--virtual-time-budget=" + strconv.FormatInt(r.budget.Milliseconds(), 10),
	}
	if r.screenshot != "" {
		args = append(args, "--screenshot="+r.screenshot)
	} else {
		args = append(args, "--dump-dom")
	}
	args = append(args, r.url)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// Chromium starts helper processes; put them in one group so that a
	// timeout kills all of them, not only the launcher.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	if err != nil || ctx.Err() != nil {
		t.Fatalf("chromium %v: %v (after %s)\nstderr:\n%s", args, err, time.Since(start).Round(time.Millisecond), tail(stderr.Bytes(), 4000))
	}
	t.Logf("chromium rendered %s at %dx%d in %s", r.url, r.width, r.height, time.Since(start).Round(time.Millisecond))
	return stdout.String()
}

// checkPNG fails the test unless path is a PNG of the given size and of
// more than minBytes, which a blank page would not reach.
func checkPNG(t *testing.T, path string, width, height int, minBytes int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatalf("screenshot %s is not a PNG: %v", path, err)
	}
	if cfg.Width != width || cfg.Height != height {
		t.Errorf("screenshot %s is %dx%d, want %dx%d", path, cfg.Width, cfg.Height, width, height)
	}
	if info.Size() < minBytes {
		t.Errorf("screenshot %s has %d bytes, fewer than %d: is the page blank?", path, info.Size(), minBytes)
	}
}

// copyScreenshot copies src to the path in INTERLOCK_UI_SCREENSHOT, if set,
// so that the README's picture is the one the test took. A relative path
// is taken from the repository's root.
func copyScreenshot(t *testing.T, src string) {
	t.Helper()
	dst := os.Getenv("INTERLOCK_UI_SCREENSHOT")
	if dst == "" {
		return
	}
	if !filepath.IsAbs(dst) {
		dst = filepath.Join("..", "..", dst)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatalf("INTERLOCK_UI_SCREENSHOT: %v", err)
	}
	t.Logf("copied the screenshot to %s", dst)
}

// domElement is one element found in a dumped DOM by its opening tag.
type domElement struct {
	attrs map[string]string
	// text is the element's text up to its first child element's end; for
	// the flat elements the tests read, the whole text.
	text string
}

var attrPattern = regexp.MustCompile(`([a-zA-Z_:][-a-zA-Z0-9_:.]*)="([^"]*)"`)

// findAll returns the elements of dom whose opening tag has the attribute
// attr, in document order. Chromium serialises attributes with double
// quotes and escapes &, " and < inside them, so a pattern over the
// opening tag is enough for the page's own data attributes.
func findAll(dom, tag, attr string) []domElement {
	re := regexp.MustCompile(`<` + tag + `\s([^>]*\b` + regexp.QuoteMeta(attr) + `="[^"]*"[^>]*)>([^<]*)`)
	var out []domElement
	for _, m := range re.FindAllStringSubmatch(dom, -1) {
		el := domElement{attrs: make(map[string]string), text: unescapeHTML(m[2])}
		for _, a := range attrPattern.FindAllStringSubmatch(m[1], -1) {
			el.attrs[a[1]] = unescapeHTML(a[2])
		}
		out = append(out, el)
	}
	return out
}

func unescapeHTML(s string) string { return html.UnescapeString(s) }
