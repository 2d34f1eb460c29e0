package main

import (
	"context"
	"errors"
	"image"
	"slices"
	"sync"
	"time"
)

// Why a job's context was cancelled (context.Cause).
var (
	errShutdown   = errors.New("the service is shutting down")
	errTimeout    = errors.New("the request ran past the service's -timeout")
	errClientGone = errors.New("the client disconnected")
	errUnwatched  = errors.New("no client followed the job's events")
	errDeleted    = errors.New("the job was cancelled by DELETE")
)

// jobState is where a job is on its way to a video.
type jobState int

const (
	stateQueued   jobState = iota // waiting for a worker
	stateRunning                  // a worker is generating
	stateEncoding                 // a worker is writing the video file
	stateDone                     // the video is ready
	stateFailed                   // an error, a cancellation included
)

func (s jobState) String() string {
	return [...]string{"queued", "running", "encoding", "done", "failed"}[s]
}

// job is one admitted request: its settings, the fitted picture, and what
// became of it.
type job struct {
	id      string
	p       params
	img     image.Image
	ctx     context.Context
	cancel  context.CancelCauseFunc
	async   bool
	created time.Time

	mu       sync.Mutex
	state    jobState
	step     int
	total    int
	video    []byte
	ctype    string
	fail     *apiError
	genTime  time.Duration
	finished time.Time
	changed  chan struct{} // closed and replaced at every change
	done     chan struct{} // closed when the job is done or failed
	watchers int           // open event streams
	idle     *time.Timer   // cancels an async job no one watches
	grace    time.Duration
}

func newJob(ctx context.Context, cancel context.CancelCauseFunc, p params, img image.Image) *job {
	return &job{
		p: p, img: img, ctx: ctx, cancel: cancel, created: time.Now(),
		changed: make(chan struct{}), done: make(chan struct{}),
	}
}

// update changes the job under its lock and wakes those who watch it.
func (j *job) update(f func()) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.state >= stateDone {
		return
	}
	f()
	close(j.changed)
	j.changed = make(chan struct{})
}

// touch wakes the watchers without a change of the job itself (its place
// in the queue moved).
func (j *job) touch() { j.update(func() {}) }

// finish ends the job with a video or a failure; later calls do nothing.
// It reports whether this call ended it.
func (j *job) finish(video []byte, ctype string, fail *apiError) bool {
	ended := false
	j.update(func() {
		ended = true
		j.video, j.ctype, j.fail, j.finished = video, ctype, fail, time.Now()
		j.state = stateDone
		if fail != nil {
			j.state = stateFailed
		}
		if j.idle != nil {
			j.idle.Stop()
		}
		close(j.done)
	})
	if ended {
		j.cancel(nil) // release the context's resources
		j.img = nil
	}
	return ended
}

// watch counts an event stream opening (+1) or closing (−1). An async job
// with no stream open for its grace period is cancelled.
func (j *job) watch(delta int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.watchers += delta
	if j.state >= stateDone || j.idle == nil {
		return
	}
	if j.watchers > 0 {
		j.idle.Stop()
	} else {
		j.idle.Reset(j.grace)
	}
}

// expectWatchers starts the grace period of an async job: it is cancelled
// unless an event stream opens within grace.
func (j *job) expectWatchers(grace time.Duration) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.grace = grace
	j.idle = time.AfterFunc(grace, func() {
		j.mu.Lock()
		unwatched := j.watchers == 0
		j.mu.Unlock()
		if unwatched {
			j.cancel(errUnwatched)
		}
	})
}

// jobView is a snapshot of a job for the API.
type jobView struct {
	ID       string  `json:"id"`
	State    string  `json:"state"`
	Position int     `json:"position,omitempty"` // jobs ahead in the queue, when queued
	Step     int     `json:"step,omitempty"`
	Total    int     `json:"total,omitempty"`
	Video    string  `json:"video,omitempty"` // where the finished video is
	Type     string  `json:"content_type,omitempty"`
	Bytes    int     `json:"bytes,omitempty"`
	Seconds  float64 `json:"seconds,omitempty"` // from admission to the video
	Status   int     `json:"status,omitempty"`  // the HTTP status of a failure
	Error    string  `json:"error,omitempty"`
	terminal bool
}

// view is the job's snapshot and the channel closed at its next change.
func (j *job) view(q *queue) (jobView, <-chan struct{}) {
	pos := q.position(j)
	j.mu.Lock()
	defer j.mu.Unlock()
	v := jobView{ID: j.id, State: j.state.String(), Step: j.step, Total: j.total}
	switch j.state {
	case stateQueued:
		v.Position = max(pos, 0)
	case stateDone:
		v.Video = "/v1/generate/" + j.id + "/video"
		v.Type, v.Bytes = j.ctype, len(j.video)
		v.Seconds = j.finished.Sub(j.created).Seconds()
		v.terminal = true
	case stateFailed:
		v.Status, v.Error = j.fail.status, j.fail.msg
		v.terminal = true
	}
	return v, j.changed
}

// queue is the bounded line in front of the workers. A place is reserved
// before the upload is decoded and committed once the job is ready, so
// that at most cap requests wait or decode at once; a job cancelled while
// it waits leaves the line at once.
type queue struct {
	mu       sync.Mutex
	cond     *sync.Cond
	waiting  []*job
	reserved int
	cap      int
	free     int // workers waiting in take
	running  int
	closed   bool
}

func newQueue(capacity int) *queue {
	q := &queue{cap: capacity}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// reserve takes a place in the line, or reports that it is full or
// closed. A worker waiting for work counts as one more place: with a free
// worker a request is taken even by a queue of 0.
func (q *queue) reserve() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || len(q.waiting)+q.reserved >= q.cap+q.free {
		return false
	}
	q.reserved++
	return true
}

// unreserve gives back a place that reserve took.
func (q *queue) unreserve() {
	q.mu.Lock()
	q.reserved--
	q.mu.Unlock()
}

// commit puts a job in the place it reserved. When its context ends
// while it waits, it leaves the line and fails with fail(cause).
func (q *queue) commit(j *job, fail func(*job) *apiError) {
	q.mu.Lock()
	q.reserved--
	q.waiting = append(q.waiting, j)
	q.cond.Signal()
	q.mu.Unlock()
	context.AfterFunc(j.ctx, func() {
		if q.remove(j) {
			j.finish(nil, "", fail(j))
		}
	})
}

// remove takes a waiting job out of the line; false when it is not there.
func (q *queue) remove(j *job) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := slices.Index(q.waiting, j)
	if i < 0 {
		return false
	}
	q.waiting = slices.Delete(q.waiting, i, i+1)
	for _, w := range q.waiting[i:] {
		w.touch()
	}
	return true
}

// take waits for the next job; nil once the queue is closed.
func (q *queue) take() *job {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.free++
	for len(q.waiting) == 0 && !q.closed {
		q.cond.Wait()
	}
	q.free--
	if q.closed {
		return nil
	}
	j := q.waiting[0]
	q.waiting = slices.Delete(q.waiting, 0, 1)
	q.running++
	for _, w := range q.waiting {
		w.touch()
	}
	return j
}

// done marks a taken job as finished by its worker.
func (q *queue) done() {
	q.mu.Lock()
	q.running--
	q.mu.Unlock()
}

// position is the number of jobs ahead of j, or −1 when j is not waiting.
func (q *queue) position(j *job) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Index(q.waiting, j)
}

// depth is the number of jobs waiting (reserved places included) and
// running.
func (q *queue) depth() (waiting, running int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiting) + q.reserved, q.running
}

// close wakes the workers to stop and returns the jobs still waiting.
func (q *queue) close() []*job {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.cond.Broadcast()
	left := q.waiting
	q.waiting = nil
	return left
}
