package clustertest

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTokenOrderViolations(t *testing.T) {
	run := func(job string, at int64, token uint64) TokenRun {
		return TokenRun{Job: job, At: at, Token: token, Name: job + "@" + string(rune('0'+at))}
	}
	tests := []struct {
		name string
		runs []TokenRun
		want []string // substrings, one per violation, in order
	}{
		{"in order", []TokenRun{run("a", 1, 1), run("a", 2, 3), run("a", 3, 4)}, nil},
		{"late after one later tick", []TokenRun{run("a", 1, 1), run("a", 3, 2), run("a", 2, 3)}, nil},
		{"late after five later ticks", []TokenRun{run("a", 2, 1), run("a", 3, 2), run("a", 4, 3), run("a", 5, 4), run("a", 6, 5), run("a", 1, 6)}, nil},
		{"late after six later ticks", []TokenRun{run("a", 2, 1), run("a", 3, 2), run("a", 4, 3), run("a", 5, 4), run("a", 6, 5), run("a", 7, 6), run("a", 1, 7)}, []string{"a@1 granted after 6 runs"}},
		{"shared token", []TokenRun{run("a", 1, 4), run("a", 2, 4)}, []string{"a@1 and a@2 share a token"}},
		{"other jobs are apart", []TokenRun{run("a", 1, 5), run("b", 2, 1)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := TokenOrderViolations(tt.runs)
			if len(got) != len(tt.want) {
				t.Fatalf("TokenOrderViolations = %q, want %d naming %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("violation %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}
