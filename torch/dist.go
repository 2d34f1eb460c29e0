package torch

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	cb "github.com/onestepvideo/osv-go/internal/cbridge"
)

// Backend is a c10d process-group backend (ParseBackend reads its name).
type Backend int

// Backends: Gloo reduces on the host (tensors may live anywhere); NCCL
// reduces on the rank's GPU (tensors on CUDA device LocalRank).
const (
	Gloo Backend = iota // the default: CPU or GPU tensors, reduced on the host
	NCCL                // GPU tensors only, reduced on the device
)

// The bridge's codes are the same numbers.
var _ = [1]struct{}{}[int(Gloo)-cb.BackendGloo+int(NCCL)-cb.BackendNCCL]

// String is the backend's name, "gloo" or "nccl" (backend(N) for another
// value).
func (b Backend) String() string {
	switch b {
	case Gloo:
		return "gloo"
	case NCCL:
		return "nccl"
	}
	return fmt.Sprintf("backend(%d)", int(b))
}

// ParseBackend reads "gloo" or "nccl"; another name is an error.
func ParseBackend(s string) (Backend, error) {
	switch s {
	case "gloo":
		return Gloo, nil
	case "nccl":
		return NCCL, nil
	}
	return 0, fmt.Errorf("distributed: unknown backend %q (want gloo or nccl)", s)
}

// DistConfig says where a rank sits in a data-parallel world and how to
// meet the others: c10d's TCPStore at Addr:Port, served by rank 0.
type DistConfig struct {
	Backend   Backend       // Gloo (the zero value) or NCCL
	Addr      string        // MASTER_ADDR (default 127.0.0.1)
	Port      int           // MASTER_PORT (default 29500)
	Rank      int           // RANK
	World     int           // WORLD_SIZE
	LocalRank int           // LOCAL_RANK: the GPU this rank uses (default Rank)
	Timeout   time.Duration // rendezvous and every collective (must be positive); a dead peer becomes an error after it
	// BucketBytes is the size of the float32 buckets gradients are
	// averaged in (0: 32 MiB).
	BucketBytes int64
}

// FreePort is a TCP port on the loopback interface that nobody listens on
// (at the time of the call), for a local world's MASTER_PORT. It is an
// error when the system gives none.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("distributed: no free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// DistConfigFromEnv reads the usual launcher variables (RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR, MASTER_PORT) into a config with the given
// timeout and the Gloo backend (set Backend afterwards for NCCL). ok is
// false, with no error, when WORLD_SIZE is not set: a single process. A
// variable that is not an integer, or RANK missing when WORLD_SIZE is set,
// is an error; the values are checked by NewProcessGroup.
func DistConfigFromEnv(timeout time.Duration) (c DistConfig, ok bool, err error) {
	ws := os.Getenv("WORLD_SIZE")
	if ws == "" {
		return c, false, nil
	}
	num := func(key, def string) (int, error) {
		v := os.Getenv(key)
		if v == "" {
			v = def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("distributed: %s=%q is not an integer", key, v)
		}
		return n, nil
	}
	c = DistConfig{Addr: os.Getenv("MASTER_ADDR"), Timeout: timeout}
	if c.Addr == "" {
		c.Addr = "127.0.0.1"
	}
	if c.World, err = num("WORLD_SIZE", ""); err != nil {
		return c, false, err
	}
	if c.Rank, err = num("RANK", ""); err != nil {
		return c, false, err
	}
	if c.LocalRank, err = num("LOCAL_RANK", strconv.Itoa(c.Rank)); err != nil {
		return c, false, err
	}
	if c.Port, err = num("MASTER_PORT", "29500"); err != nil {
		return c, false, err
	}
	return c, true, nil
}

// ProcessGroup is this process's membership of a data-parallel world
// (a c10d process group). Collectives block until every rank has
// joined them, or fail after the timeout. Make one with NewProcessGroup;
// after Close every method returns an error.
type ProcessGroup struct {
	Config DistConfig // the configuration it was made with

	g      cb.Group
	closed bool
}

// DistributedBuilt reports whether this build of libtorch has c10d with
// backend b.
func DistributedBuilt(b Backend) bool { return cb.DistBuilt(int(b)) }

// NewProcessGroup joins the world c describes; it returns once every rank
// has, or fails after c.Timeout. A world size below 1, a rank outside it, a
// port outside 1..65535, a timeout that is not positive, an unknown
// backend or one this build lacks, an NCCL local rank that names no CUDA
// device, and a failed rendezvous are errors.
func NewProcessGroup(c DistConfig) (*ProcessGroup, error) {
	switch {
	case c.World < 1:
		return nil, fmt.Errorf("distributed: world size %d must be at least 1", c.World)
	case c.Rank < 0 || c.Rank >= c.World:
		return nil, fmt.Errorf("distributed: rank %d is outside a world of %d", c.Rank, c.World)
	case c.Port < 1 || c.Port > 65535:
		return nil, fmt.Errorf("distributed: port %d is out of range", c.Port)
	case c.Timeout <= 0:
		return nil, errors.New("distributed: the timeout must be positive")
	case c.Backend != Gloo && c.Backend != NCCL:
		return nil, fmt.Errorf("distributed: unknown %v", c.Backend)
	case !DistributedBuilt(c.Backend):
		return nil, fmt.Errorf("distributed: this build has no c10d %v backend", c.Backend)
	case c.Backend == NCCL && (c.LocalRank < 0 || c.LocalRank >= cb.CUDADeviceCount()):
		return nil, fmt.Errorf("distributed: NCCL rank %d: local rank %d names no CUDA device (%d visible)",
			c.Rank, c.LocalRank, cb.CUDADeviceCount())
	}
	g, err := cb.DistInit(c.Addr, c.Port, c.Rank, c.World, c.Timeout.Milliseconds(), int(c.Backend), c.LocalRank)
	if err != nil {
		return nil, fmt.Errorf("distributed: rank %d of %d at %s:%d: %w", c.Rank, c.World, c.Addr, c.Port, err)
	}
	return &ProcessGroup{Config: c, g: g}, nil
}

func (p *ProcessGroup) check() error {
	if p == nil || p.closed {
		return errors.New("distributed: the process group is closed")
	}
	return nil
}

// AllReduceMean replaces each tensor, in place, with its mean over the
// ranks (reduced in float32, in buckets); every rank passes tensors of the
// same shapes in the same order. With NCCL the tensors must be on the
// rank's GPU. A closed group, a nil or released tensor, a dead peer and a
// timeout are errors.
func (p *ProcessGroup) AllReduceMean(ts []*Tensor) error {
	if err := p.check(); err != nil {
		return err
	}
	hs, err := liveHandles("all_reduce", ts)
	if err != nil {
		return fmt.Errorf("distributed: %w", err)
	}
	if err := p.g.AllReduceMean(hs); err != nil {
		return fmt.Errorf("distributed: all-reduce on rank %d: %w", p.Config.Rank, err)
	}
	return nil
}

// Broadcast copies the tensors of rank root, in place, into every other
// rank's (same shapes, same order on every rank). A closed group, a root
// outside the world, a nil or released tensor, a dead peer and a timeout
// are errors.
func (p *ProcessGroup) Broadcast(ts []*Tensor, root int) error {
	if err := p.check(); err != nil {
		return err
	}
	if root < 0 || root >= p.Config.World {
		return fmt.Errorf("distributed: broadcast root %d is outside a world of %d", root, p.Config.World)
	}
	hs, err := liveHandles("broadcast", ts)
	if err != nil {
		return fmt.Errorf("distributed: %w", err)
	}
	if err := p.g.Broadcast(hs, root); err != nil {
		return fmt.Errorf("distributed: broadcast on rank %d: %w", p.Config.Rank, err)
	}
	return nil
}

// Barrier returns when every rank has reached it; a closed group, a dead
// peer and a timeout are errors.
func (p *ProcessGroup) Barrier() error {
	if err := p.check(); err != nil {
		return err
	}
	if err := p.g.Barrier(); err != nil {
		return fmt.Errorf("distributed: barrier on rank %d: %w", p.Config.Rank, err)
	}
	return nil
}

// Close leaves the group. It is safe to call twice, and on nil.
func (p *ProcessGroup) Close() {
	if p != nil && !p.closed {
		p.closed = true
		p.g.Free()
	}
}

// GradReducer averages the gradients of a fixed set of parameters over the
// ranks while the backward pass runs: each parameter's gradient goes into
// its bucket as soon as autograd has it, and a full bucket starts its
// all-reduce at once, overlapping the rest of the backward (buckets start
// in one order on every rank). Use, every step: Arm, Backward, Finish; then
// Close.
type GradReducer struct {
	p      *ProcessGroup
	r      cb.Reducer
	closed bool
}

// NewGradReducer hooks params, which must require gradients and be the
// same list on every rank, into p; buckets hold Config.BucketBytes of
// float32 gradients. A closed group, or a nil, released or frozen
// parameter, is an error.
func (p *ProcessGroup) NewGradReducer(params []*Tensor) (*GradReducer, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	hs, err := liveHandles("grad_reducer", params)
	if err != nil {
		return nil, fmt.Errorf("distributed: %w", err)
	}
	bucket := p.Config.BucketBytes
	if bucket <= 0 {
		bucket = 32 << 20
	}
	r, err := p.g.NewReducer(hs, bucket)
	if err != nil {
		return nil, fmt.Errorf("distributed: %w", err)
	}
	return &GradReducer{p: p, r: r}, nil
}

// Arm prepares for the next backward pass; a closed reducer or group is an
// error.
func (g *GradReducer) Arm() error {
	if g == nil || g.closed {
		return errors.New("distributed: the gradient reducer is closed")
	}
	if err := g.p.check(); err != nil {
		return err
	}
	return g.r.Arm()
}

// Finish waits for the all-reduces, starting those the backward left,
// and sets every parameter's gradient to the mean over the ranks (zeros
// standing in for a gradient a rank did not produce). overlapped is how
// many buckets started while the backward ran. A closed reducer or group,
// a Finish without Arm, a dead peer and a timeout are errors.
func (g *GradReducer) Finish() (overlapped int, err error) {
	if g == nil || g.closed {
		return 0, errors.New("distributed: the gradient reducer is closed")
	}
	if err := g.p.check(); err != nil {
		return 0, err
	}
	n, err := g.r.Finish()
	if err != nil {
		return n, fmt.Errorf("distributed: gradients on rank %d: %w", g.p.Config.Rank, err)
	}
	return n, nil
}

// Close removes the reducer's hooks. It is safe to call twice, and on nil.
func (g *GradReducer) Close() {
	if g != nil && !g.closed {
		g.closed = true
		g.r.Free()
	}
}
