package httpapi_test

import (
	"testing"

	"github.com/interlockraft/interlock/cluster/clustertest"
)

func TestMain(m *testing.M) {
	clustertest.VerifyTestMain(m)
}
