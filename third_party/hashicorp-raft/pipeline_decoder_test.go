package raft

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// strictTransport gives pipelines that hand their requests on as
// NetworkTransport's do with its default MaxRPCsInFlight (2): through
// unbuffered channels, a send waits until the decoder takes it, and the
// decoder waits until the consumer takes the answer before the next.
type strictTransport struct{ *InmemTransport }

func (t strictTransport) AppendEntriesPipeline(id ServerID, target ServerAddress) (AppendPipeline, error) {
	p, err := t.InmemTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	s := &strictPipeline{inner: p, inprogress: make(chan AppendFuture), done: make(chan AppendFuture),
		shutdown: make(chan struct{})}
	go s.decode()
	return s, nil
}

type strictPipeline struct {
	inner            AppendPipeline
	inprogress, done chan AppendFuture
	once             sync.Once
	shutdown         chan struct{}
}

func (s *strictPipeline) AppendEntries(args *AppendEntriesRequest, resp *AppendEntriesResponse) (AppendFuture, error) {
	f, err := s.inner.AppendEntries(args, resp)
	if err != nil {
		return nil, err
	}
	select {
	case s.inprogress <- f:
		return f, nil
	case <-s.shutdown:
		return nil, ErrPipelineShutdown
	}
}

func (s *strictPipeline) decode() {
	for {
		select {
		case f := <-s.inprogress:
			_ = f.Error() // its answer
			select {
			case s.done <- f:
			case <-s.shutdown:
				return
			}
		case <-s.shutdown:
			return
		}
	}
}

func (s *strictPipeline) Consumer() <-chan AppendFuture { return s.done }

func (s *strictPipeline) Close() error {
	s.once.Do(func() { close(s.shutdown) })
	return s.inner.Close()
}

// heldRequests counts the answers held but heartbeats'.
func (f *testFollower) heldRequests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, h := range f.held {
		if !h.heartbeat {
			n++
		}
	}
	return n
}

// A follower that refuses a pipelined request ends the pipeline's decoder;
// a send on that pipeline afterwards must not wait for good (upstream's,
// with NetworkTransport's default channels, did half the time: the
// follower got no entry again, and Shutdown never returned).
func TestPipelineDecoderStopFreesTheSender(t *testing.T) {
	for round := range 6 {
		conf := inmemConfig(t)
		_, leaderTrans := NewInmemTransport("leader")
		r, f, followerAddr := soleLeader(t, conf, leaderTrans, strictTransport{leaderTrans}, nil)
		if err := r.AddNonvoter("follower", followerAddr, 0, 0).Error(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "follower holding the configuration", func() error {
			if i := r.getCommitIndex(); !f.holds(i) {
				return fmt.Errorf("not yet index %d", i)
			}
			return nil
		})
		// Two requests pipelined (the decoder waits for the first answer,
		// the second send for the decoder), a third entry waiting; then
		// both answered with a refusal.
		f.mu.Lock()
		f.hold, f.refuse = true, true
		f.mu.Unlock()
		for want := 1; want <= 2; want++ {
			r.Apply([]byte("x"), 0)
			waitFor(t, fmt.Sprintf("%d requests held", want), func() error {
				if n := f.heldRequests(); n < want {
					return fmt.Errorf("%d held", n)
				}
				return nil
			})
		}
		r.Apply([]byte("x"), 0)
		f.mu.Lock()
		f.hold = false
		f.mu.Unlock()
		f.release(-1)
		done := make(chan struct{})
		go func() {
			_ = r.Shutdown().Error()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: Shutdown has not returned after 5 s: the replication is stuck sending on a pipeline whose decoder stopped", round)
		}
	}
}
