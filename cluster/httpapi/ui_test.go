package httpapi

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestUIHandlerMethods(t *testing.T) {
	for _, tc := range []struct {
		method   string
		code     int
		wantBody bool
	}{
		{http.MethodGet, http.StatusOK, true},
		{http.MethodHead, http.StatusOK, false},
		{http.MethodPost, http.StatusMethodNotAllowed, false},
		{http.MethodDelete, http.StatusMethodNotAllowed, false},
	} {
		t.Run(tc.method, func(t *testing.T) {
			rec := httptest.NewRecorder()
			uiHandler(Config{}).ServeHTTP(rec, httptest.NewRequest(tc.method, "/ui", nil))
			if rec.Code != tc.code {
				t.Fatalf("%s /ui: status %d, want %d", tc.method, rec.Code, tc.code)
			}
			if tc.code == http.StatusMethodNotAllowed {
				var e Error
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || !strings.Contains(e.Error, "use GET") {
					t.Errorf("body %q, want a JSON Error that says to use GET (%v)", rec.Body, err)
				}
				if got := rec.Header().Get("Allow"); got != "GET, HEAD" {
					t.Errorf("Allow = %q, want GET, HEAD", got)
				}
				return
			}
			h := rec.Header()
			if got := h.Get("Content-Type"); got != "text/html; charset=utf-8" {
				t.Errorf("Content-Type = %q", got)
			}
			if got := h.Get("Content-Security-Policy"); got != uiPolicy {
				t.Errorf("Content-Security-Policy = %q, want %q", got, uiPolicy)
			}
			if got, want := h.Get("Content-Length"), len(uiPage); got != strconv.Itoa(want) {
				t.Errorf("Content-Length = %q, want %d", got, want)
			}
			if got := rec.Body.Len() > 0; got != tc.wantBody {
				t.Errorf("body of %d bytes; want a body: %v", rec.Body.Len(), tc.wantBody)
			}
		})
	}
}

// TestUIPageIsSelfContained checks the embedded page's promises that a
// browser test would not notice: no asset from another origin, no way for
// API text to become markup, a phone viewport, and a policy that allows
// exactly its inline script and style.
func TestUIPageIsSelfContained(t *testing.T) {
	page := string(uiPage)
	for _, bad := range []struct{ pattern, why string }{
		{`(?i)\b(src|href)\s*=\s*["']?\s*(https?:)?//`, "loads an asset from another origin"},
		{`(?i)url\(\s*["']?\s*(https?:)?//`, "loads a CSS asset from another origin"},
		{`(?i)@import`, "imports a stylesheet"},
		{`(?i)<link\b`, "links an external resource"},
		{`\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write|\beval\(|new Function\(`, "inserts markup from strings"},
		{`(?i)<script\s+src`, "loads an external script"},
	} {
		if m := regexp.MustCompile(bad.pattern).FindString(page); m != "" {
			t.Errorf("the page %s: %q", bad.why, m)
		}
	}
	for _, want := range []string{
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		`@media (max-width:`,
		`"v1/status"`, `"v1/jobs"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	for _, tag := range []string{"script", "style"} {
		if n := strings.Count(page, "<"+tag); n != 1 {
			t.Fatalf("the page has %d <%s> elements, want 1", n, tag)
		}
		open, end := "<"+tag+">", "</"+tag+">"
		i, j := strings.Index(page, open), strings.Index(page, end)
		if i < 0 || j < i {
			t.Fatalf("the page's <%s> has attributes or no end; inlineHashes matches %s only", tag, open)
		}
		sum := sha256.Sum256([]byte(page[i+len(open) : j]))
		want := tag + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if !strings.Contains(uiPolicy, want) {
			t.Errorf("policy %q lacks %q", uiPolicy, want)
		}
	}
	if !strings.Contains(uiPolicy, "default-src 'none'") || !strings.Contains(uiPolicy, "connect-src 'self'") {
		t.Errorf("policy %q must deny by default and connect only to its own origin", uiPolicy)
	}
}

func TestInlineHashes(t *testing.T) {
	sum := func(s string) string {
		h := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(h[:]) + "'"
	}
	for _, tc := range []struct {
		name, page, want string
	}{
		{"none", `<p>hi</p>`, "'none'"},
		{"one", `<script>a()</script>`, sum("a()")},
		{"two", `<script>a()</script><p/><script>b()</script>`, sum("a()") + " " + sum("b()")},
		{"unterminated", `<script>a()`, "'none'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := inlineHashes([]byte(tc.page), "script"); got != tc.want {
				t.Errorf("inlineHashes(%q) = %s, want %s", tc.page, got, tc.want)
			}
		})
	}
}
