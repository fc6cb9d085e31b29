package cluster

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzDecodeMeta decodes arbitrary bytes as a member's gossip metadata, as
// every node does for every member gossip tells it about. Whatever the
// input, decodeMeta must not panic; metadata it accepts must survive an
// encode and decode unchanged. Seeds: real metadata plus
// testdata/fuzz/FuzzDecodeMeta.
func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []meta{
		{Version: metaVersion, Cluster: DefaultClusterName, RaftAddr: "10.0.0.1:7947", Expect: 3},
		{Version: metaVersion, Cluster: "c", RaftAddr: "[::1]:1", InCluster: true, Leaving: true, ID: "id", Boot: "fp"},
	} {
		b, err := json.Marshal(m)
		if err != nil {
			f.Fatalf("Marshal: %v", err)
		}
		f.Add(b)
	}
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeMeta(data)
		if err != nil {
			return
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("accepted metadata %+v does not encode: %v", m, err)
		}
		again, err := decodeMeta(b)
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("metadata %+v round-tripped to %+v, %v", m, again, err)
		}
	})
}
