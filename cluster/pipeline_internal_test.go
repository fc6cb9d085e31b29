package cluster

import (
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// chanPipeline is shaped like raft.NetworkTransport's pipeline: a send
// waits for room in the unbuffered in-flight queue, and one reader moves
// each request, answered, to the unbuffered Consumer channel, waiting there
// for Raft to take it.
type chanPipeline struct {
	inflight chan raft.AppendFuture
	done     chan raft.AppendFuture
	stop     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
}

type answered struct{ req *raft.AppendEntriesRequest }

func (a answered) Error() error                          { return nil }
func (a answered) Index() uint64                         { return 0 }
func (a answered) Start() time.Time                      { return time.Time{} }
func (a answered) Request() *raft.AppendEntriesRequest   { return a.req }
func (a answered) Response() *raft.AppendEntriesResponse { return &raft.AppendEntriesResponse{} }

func newChanPipeline() *chanPipeline {
	p := &chanPipeline{inflight: make(chan raft.AppendFuture), done: make(chan raft.AppendFuture), stop: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			select {
			case f := <-p.inflight:
				select {
				case p.done <- f:
				case <-p.stop:
					return
				}
			case <-p.stop:
				return
			}
		}
	}()
	return p
}

func (p *chanPipeline) AppendEntries(args *raft.AppendEntriesRequest, _ *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	f := answered{req: args}
	select {
	case p.inflight <- f:
		return f, nil
	case <-p.stop:
		return nil, raft.ErrPipelineShutdown
	}
}

func (p *chanPipeline) Consumer() <-chan raft.AppendFuture { return p.done }

func (p *chanPipeline) Close() error {
	p.once.Do(func() { close(p.stop) })
	p.wg.Wait()
	return nil
}

// TestDrainedPipelineSendsAfterItsReaderLeft checks the hang that
// drainedPipeline exists for: once Raft's decoder stopped reading answers
// (a follower answered Success=false), further sends still complete, so
// Raft's replication loop can notice and close the pipeline. Raft's
// decoder reads the first answer and leaves; the sends after it must not
// block. Without the wrapper the third send waits forever: the transport's
// reader holds the second answer for the decoder that left.
func TestDrainedPipelineSendsAfterItsReaderLeft(t *testing.T) {
	inner := newChanPipeline()
	p := newDrainedPipeline(inner)
	first := &raft.AppendEntriesRequest{Term: 1}
	if _, err := p.AppendEntries(first, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-p.Consumer():
		if f.Request() != first {
			t.Fatalf("first answer is for %+v, want the first request", f.Request())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to the first request")
	}
	// The decoder has left: nothing reads Consumer from here on.
	sent := make(chan int)
	go func() {
		n := 0
		for range 10 {
			if _, err := p.AppendEntries(&raft.AppendEntriesRequest{}, nil); err != nil {
				break
			}
			n++
		}
		sent <- n
	}()
	select {
	case n := <-sent:
		if n != 10 {
			t.Fatalf("%d of 10 sends went through", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a send blocked after Raft stopped reading answers: the pipeline hangs")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDrainedPipelineKeepsOrder checks that answers reach Raft in the
// order their requests were sent, however far Raft lags.
func TestDrainedPipelineKeepsOrder(t *testing.T) {
	p := newDrainedPipeline(newChanPipeline())
	defer p.Close()
	var reqs []*raft.AppendEntriesRequest
	for i := range 20 {
		r := &raft.AppendEntriesRequest{PrevLogEntry: uint64(i)}
		reqs = append(reqs, r)
		if _, err := p.AppendEntries(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range reqs {
		select {
		case f := <-p.Consumer():
			if f.Request() != want {
				t.Fatalf("answer %d is for request %d", i, f.Request().PrevLogEntry)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("answer %d never came", i)
		}
	}
}
