package httpapi

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
)

// uiPage is the status page: one HTML file with its CSS and script inline,
// so that it works where the application's network reaches nothing but
// the node itself. It reads v1/status and v1/jobs relative to its own URL,
// so it works wherever the application mounts the handler.
//
//go:embed ui.html
var uiPage []byte

// uiPolicy is the page's Content-Security-Policy. The inline script and
// style are allowed by their hashes rather than 'unsafe-inline', so that a
// string from the cluster that did reach the DOM as markup still could not
// run; connect-src 'self' limits the page to the node that served it.
var uiPolicy = contentPolicy(uiPage)

// uiHandler serves the status page at GET (and HEAD) /ui. The page is
// static and the same for every Config; it fetches the JSON API from the
// browser every two seconds. The handler is safe for concurrent use.
func uiHandler(Config) http.Handler {
	length := strconv.Itoa(len(uiPage))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, r.Method+" /ui: the status page is read-only; use GET")
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Length", length)
		h.Set("Content-Security-Policy", uiPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// The page is part of the binary: a browser should not keep one
		// from an older release after the application is upgraded.
		h.Set("Cache-Control", "no-cache")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(uiPage)
	})
}

// contentPolicy returns the Content-Security-Policy for page, allowing its
// inline <script> and <style> elements by their SHA-256 hashes and nothing
// from any other origin.
func contentPolicy(page []byte) string {
	return strings.Join([]string{
		"default-src 'none'",
		"script-src " + inlineHashes(page, "script"),
		"style-src " + inlineHashes(page, "style"),
		"connect-src 'self'",
		"img-src 'self' data:",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
}

// inlineHashes returns the CSP hash sources of every <tag>...</tag> body in
// page, or 'none' if there is none. The page's elements carry no
// attributes, so the opening tag is matched literally.
func inlineHashes(page []byte, tag string) string {
	open, end := []byte("<"+tag+">"), []byte("</"+tag+">")
	var sources []string
	rest := page
	for {
		i := bytes.Index(rest, open)
		if i < 0 {
			break
		}
		rest = rest[i+len(open):]
		j := bytes.Index(rest, end)
		if j < 0 {
			break
		}
		sum := sha256.Sum256(rest[:j])
		sources = append(sources, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
		rest = rest[j+len(end):]
	}
	if len(sources) == 0 {
		return "'none'"
	}
	return strings.Join(sources, " ")
}
