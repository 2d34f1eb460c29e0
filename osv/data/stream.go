package data

import (
	"context"
	"runtime"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// StreamOptions bound a Stream's work.
type StreamOptions struct {
	Options
	Workers  int                          // decodes at once (GOMAXPROCS)
	Prefetch int                          // clips decoded ahead of the reader, in memory at most (2·Workers)
	Report   func(path string, err error) // told about each skipped video (nothing when nil)
	// Decode reads one video (nil: Decode with Options); DecodeFrames,
	// say, for clips at the videos' own size. Its errors skip the video,
	// except ErrNoFFmpeg, which ends the stream.
	Decode func(ctx context.Context, path string) (*Clip, error)
}

// Stats count a stream's videos.
type Stats struct {
	Decoded atomic.Int64
	Skipped atomic.Int64
}

// Stream decodes paths in parallel and sends the clips on the returned
// channel in the order of paths, skipping (reporting and counting) the
// videos that fail. At most Prefetch clips are decoded ahead of the
// reader. The channel closes when every path is done or ctx is cancelled;
// wait returns the first error that is not a skipped video (a missing
// ffmpeg, a cancelled context).
func Stream(ctx context.Context, paths []string, o StreamOptions) (clips <-chan *Clip, stats *Stats, wait func() error) {
	o.Options = o.Options.withDefaults()
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Prefetch <= 0 {
		o.Prefetch = 2 * o.Workers
	}
	out := make(chan *Clip)
	stats = &Stats{}
	g, ctx := errgroup.WithContext(ctx)
	type result struct {
		clip *Clip
		err  error
	}
	slots := make([]chan result, len(paths))
	for i := range slots {
		slots[i] = make(chan result, 1)
	}
	window := make(chan struct{}, o.Prefetch) // clips decoded and not yet read
	// The producer starts decodes in order, at most Workers at a time and
	// at most Prefetch ahead of the reader.
	g.Go(func() error {
		work, wctx := errgroup.WithContext(ctx)
		work.SetLimit(o.Workers)
		for i, p := range paths {
			select {
			case window <- struct{}{}:
			case <-wctx.Done():
				return work.Wait()
			}
			work.Go(func() error {
				var c *Clip
				var err error
				if o.Decode != nil {
					c, err = o.Decode(wctx, p)
				} else {
					c, err = Decode(wctx, p, o.Options)
				}
				if err == ErrNoFFmpeg {
					return err
				}
				slots[i] <- result{c, err}
				return nil
			})
		}
		return work.Wait()
	})
	// The reader delivers in order.
	g.Go(func() error {
		defer close(out)
		for i := range paths {
			var r result
			select {
			case r = <-slots[i]:
			case <-ctx.Done():
				return ctx.Err()
			}
			<-window
			if r.err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				stats.Skipped.Add(1)
				if o.Report != nil {
					o.Report(paths[i], r.err)
				}
				continue
			}
			stats.Decoded.Add(1)
			select {
			case out <- r.clip:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	return out, stats, g.Wait
}
