package cluster_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The operations guide promises a complete list of the library's log
// lines at Warn and Error and of its metrics; these tests keep it so.

var (
	warnCall = regexp.MustCompile(`\.(Warn|Error)\(\s*"([^"]+)"`)
	// A throttled or table-made line: newThrottledLog(logger, hclog.Warn, "...").
	throttledWarn = regexp.MustCompile(`hclog\.(Warn|Error),\s*"([^"]+)"`)
	metricName    = regexp.MustCompile(`"(interlock_[a-z_]+)"`)
)

// libraryFiles returns the non-test Go files under the repository's
// library directories whose base name matches pattern.
func libraryFiles(t *testing.T, pattern string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, dir := range []string{"cluster", "scheduler", "fsm", "transport", "internal"} {
		err := filepath.WalkDir(filepath.Join("..", dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			name := d.Name()
			if d.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
				return nil
			}
			if ok, _ := filepath.Match(pattern, name); !ok {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			out[path] = string(b)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func operationsDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestOperationsDocListsEveryWarning checks that every Warn and Error
// message the library logs appears, in backquotes, in docs/operations.md.
func TestOperationsDocListsEveryWarning(t *testing.T) {
	doc := operationsDoc(t)
	found := 0
	for path, src := range libraryFiles(t, "*.go") {
		for _, re := range []*regexp.Regexp{warnCall, throttledWarn} {
			for _, m := range re.FindAllStringSubmatch(src, -1) {
				found++
				if !strings.Contains(doc, "`"+m[2]+"`") {
					t.Errorf("%s logs %q at %s, but docs/operations.md (\"Every Interlock line at Warn or Error\") does not list it; add a row with its meaning and what to do", path, m[2], m[1])
				}
			}
		}
	}
	if found < 30 {
		t.Errorf("found only %d Warn and Error calls; is the pattern still right?", found)
	}
}

// TestOperationsDocListsEveryMetric checks that every interlock_ series
// the metrics files define is described in docs/operations.md.
func TestOperationsDocListsEveryMetric(t *testing.T) {
	doc := operationsDoc(t)
	found := 0
	for path, src := range libraryFiles(t, "metrics*.go") {
		for _, m := range metricName.FindAllStringSubmatch(src, -1) {
			found++
			if !strings.Contains(doc, "`"+m[1]+"`") {
				t.Errorf("%s defines %s, but docs/operations.md does not describe it", path, m[1])
			}
		}
	}
	if found < 25 {
		t.Errorf("found only %d metric names; is the pattern still right?", found)
	}
}
