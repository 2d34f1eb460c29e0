package osv

import (
	"context"
	"sync"
)

// serial lets one call at a time use a pipeline's models (they share
// adapters' switches and scratch state); a waiting call gives up when its
// context ends.
type serial struct {
	once sync.Once
	ch   chan struct{}
}

func (s *serial) acquire(ctx context.Context) error {
	s.once.Do(func() { s.ch = make(chan struct{}, 1) })
	if ctx == nil {
		ctx = context.Background()
	}
	select {
	case s.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *serial) release() { <-s.ch }

// lock waits for the pipeline's other calls to finish.
func (p *Pipeline) lock(ctx context.Context) error { return p.calls.acquire(ctx) }
