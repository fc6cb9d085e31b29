package main

import (
	"testing"
	"time"
)

func TestSummariseGroupsByPackage(t *testing.T) {
	p := &s5Profile{}
	p.summarise([]profSample{
		{d: 30 * time.Millisecond, frames: []string{"github.com/hashicorp/go-msgpack/v2/codec.(*Decoder).decode", "github.com/interlockraft/interlock/fsm.(*FSM).Apply", "github.com/hashicorp/raft.(*Raft).runFSM"}},
		{d: 10 * time.Millisecond, frames: []string{"runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker"}},
		{d: 10 * time.Millisecond, frames: []string{"syscall.Syscall", "go.etcd.io/bbolt.(*DB).Sync"}},
	})
	if p.total != 50*time.Millisecond {
		t.Fatalf("total %s", p.total)
	}
	want := map[string][2]float64{
		"msgpack (encoding)":            {60, 60},
		"fsm (state machine)":           {0, 60},
		"hashicorp/raft":                {0, 60},
		groupGC:                         {20, 20},
		"bolt (Raft log)":               {0, 20},
		"system calls (fsync, network)": {20, 20},
	}
	got := map[string][2]float64{}
	for _, g := range p.cumGroups {
		got[g.name] = [2]float64{g.flat, g.cum}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: flat, cum = %v, want %v", k, got[k], v)
		}
	}
	if p.top[0].name != "github.com/hashicorp/go-msgpack/v2/codec.(*Decoder).decode" || p.top[0].flat != 60 {
		t.Errorf("top function %+v", p.top[0])
	}
}
