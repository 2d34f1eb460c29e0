package main

import (
	"fmt"
	"math"
	"strings"

	"github.com/onestepvideo/osv-go/torch"
	"github.com/onestepvideo/osv-go/unet"
)

// widenSplit is how a doubled channel's contribution to the next layer is
// shared between its two copies: split and 1 − split. Any split keeps the
// function; one other than ½ gives the copies different gradients, so
// that training can make them differ.
const widenSplit = 0.6

// widenInto sets every weight of dst, a toy teacher whose block widths are
// twice src's (the same heads, frames and latent), so that dst computes
// what src computes: channel c of every width becomes channels 2c and
// 2c + 1.
//
//   - An output dimension that doubles takes each row twice; GroupNorm's
//     groups and the attention heads then hold the copies of their own
//     channels, so their statistics and scores are src's.
//   - An input dimension that doubles takes each column twice, scaled by
//     widenSplit and 1 − widenSplit, so the sum over the copies is src's.
//   - The sinusoidal embeddings of the timestep and of the frame index
//     grow with the width: at twice the width their frequencies are src's
//     at the even indices and new ones between. The new ones get zero
//     weights in the layer that reads them.
//   - The heads' dimension doubles, and with it the scores' 1/√d scale:
//     the queries are scaled by 1/√2 to keep the scores.
//
// A key of dst that src lacks, or a shape that is neither src's nor twice
// it, is an error naming the key.
func widenInto(dst, src *unet.Model) (err error) {
	defer torch.Recover(&err)
	s := torch.NewScope()
	defer s.Close()
	for _, p := range dst.Params().List() {
		q, ok := src.Params().Get(p.Name)
		if !ok || q.T == nil {
			return fmt.Errorf("widen: %s is not in the narrower UNet", p.Name)
		}
		data, err := widenTensor(s, p, q)
		if err != nil {
			return err
		}
		t, err := torch.FromFloat32(s, data, p.Shape, torch.Float32, torch.CPU)
		if err != nil {
			return err
		}
		if err := torch.CopyInto(p.T, t); err != nil {
			return fmt.Errorf("widen: %s: %w", p.Name, err)
		}
	}
	return nil
}

// widenTensor is p's values from q's, by the rules of widenInto.
func widenTensor(s *torch.Scope, p, q *torch.Param) ([]float32, error) {
	if len(p.Shape) != len(q.Shape) {
		return nil, fmt.Errorf("widen: %s has shape %v, the narrower UNet's %v", p.Name, p.Shape, q.Shape)
	}
	src, err := s.Cast(q.T, torch.Float32).Float32s()
	if err != nil {
		return nil, fmt.Errorf("widen: %s: %w", p.Name, err)
	}
	sinusoid := strings.HasSuffix(p.Name, "time_embedding.linear_1.weight") || strings.HasSuffix(p.Name, "time_pos_embed.linear_1.weight")
	scale := 1.0
	if strings.HasSuffix(p.Name, ".to_q.weight") {
		scale = 1 / math.Sqrt2
	}
	// For each dimension: the source index and the factor of every index.
	idx := make([][]int, len(p.Shape))
	fac := make([][]float64, len(p.Shape))
	for d, n := range p.Shape {
		m := q.Shape[d]
		idx[d], fac[d] = make([]int, n), make([]float64, n)
		switch {
		case n == m:
			for i := range n {
				idx[d][i], fac[d][i] = int(i), 1
			}
		case n == 2*m && d == 1 && sinusoid:
			// [cos | sin] of m/2 frequencies each → of m each; source
			// frequency j is frequency 2j here.
			h := int(m / 2)
			for i := range int(n) {
				half, j := i/int(m), i%int(m)
				if j%2 == 0 {
					idx[d][i], fac[d][i] = half*h+j/2, 1
				} else {
					idx[d][i], fac[d][i] = 0, 0
				}
			}
		case n == 2*m && d == 1:
			for i := range int(n) {
				idx[d][i], fac[d][i] = i/2, widenSplit
				if i%2 == 1 {
					fac[d][i] = 1 - widenSplit
				}
			}
		case n == 2*m && d == 0:
			for i := range int(n) {
				idx[d][i], fac[d][i] = i/2, 1
			}
		default:
			return nil, fmt.Errorf("widen: %s has shape %v, neither the narrower UNet's %v nor twice it in its first two dimensions", p.Name, p.Shape, q.Shape)
		}
	}
	srcStride := make([]int, len(q.Shape))
	st := 1
	for d := len(q.Shape) - 1; d >= 0; d-- {
		srcStride[d] = st
		st *= int(q.Shape[d])
	}
	total := 1
	for _, n := range p.Shape {
		total *= int(n)
	}
	out := make([]float32, total)
	at := make([]int, len(p.Shape)) // the destination index, last dimension fastest
	for k := range out {
		off, f := 0, scale
		for d, i := range at {
			off += idx[d][i] * srcStride[d]
			f *= fac[d][i]
		}
		if f != 0 {
			out[k] = float32(float64(src[off]) * f)
		}
		for d := len(at) - 1; d >= 0; d-- {
			if at[d]++; at[d] < int(p.Shape[d]) {
				break
			}
			at[d] = 0
		}
	}
	return out, nil
}
