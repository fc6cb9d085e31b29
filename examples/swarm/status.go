package main

import (
	"encoding/json"
	"net/http"
	"sync/atomic"

	"github.com/interlockraft/interlock/cluster"
)

// status is the JSON GET /status answers with: the node's view of the
// cluster, for health checks, the demo and the container tests.
type status struct {
	Name     string         `json:"name"`
	Ready    bool           `json:"ready"`
	Leader   string         `json:"leader"`
	IsLeader bool           `json:"is_leader"`
	Servers  []statusServer `json:"servers"`
	Members  []statusMember `json:"members"`
	Error    string         `json:"error,omitempty"`
}

type statusServer struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
}

type statusMember struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Status  string `json:"status"`
}

// statusHandler answers 503 with "ready":false until node holds a started
// node, then 200 with its view. It is safe for concurrent requests.
func statusHandler(name string, node *atomic.Pointer[cluster.Node]) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := status{Name: name, Servers: []statusServer{}, Members: []statusMember{}}
		code := http.StatusServiceUnavailable
		if n := node.Load(); n != nil {
			code = http.StatusOK
			st.Ready = true
			st.Leader = n.Leader()
			st.IsLeader = n.IsLeader()
			servers, err := n.Servers()
			if err != nil {
				st.Error = err.Error()
				code = http.StatusServiceUnavailable
			}
			for _, s := range servers {
				st.Servers = append(st.Servers, statusServer{Name: s.Name, Address: s.Address, Voter: s.Voter})
			}
			for _, m := range n.Members() {
				st.Members = append(st.Members, statusMember{Name: m.Name, Address: m.GossipAddr, Status: m.Status.String()})
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(st)
	})
}
