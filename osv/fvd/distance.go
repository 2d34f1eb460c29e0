package fvd

import (
	"fmt"
	"math"

	"github.com/onestepvideo/osv-go/torch"
)

// Distance is the Fréchet distance between the Gaussians fitted to two
// feature sets (one row per clip), as the reference FVD code computes it:
//
//	|μa − μb|² + Tr(Σa + Σb − 2·(Σa·Σb)^½)
//
// with the rows' mean and their covariance with N − 1 (numpy's np.cov).
// The matrix square root is taken in float64 through libtorch's linalg:
// Tr (Σa·Σb)^½ is the sum of the square roots of the eigenvalues of the
// symmetric Σa^½·Σb·Σa^½ (the same eigenvalues as Σa·Σb), Σa^½ from a
// symmetric eigendecomposition. The real part is taken as the reference
// takes it: a negative eigenvalue (rounding, for sets of fewer rows than
// features) has an imaginary root and adds nothing. Nothing is clamped
// after that, so a set against itself gives 0 up to rounding, either side
// of it. When either set has fewer than 2 rows, the distance is the mean
// term alone, as the reference computes it for a first set of one row.
// An empty set, rows of different lengths and a value that is not finite
// are errors.
func Distance(a, b [][]float64) (float64, error) { return DistanceOn(torch.CPU, a, b) }

// DistanceOn is Distance computed on a device (float64 there too).
func DistanceOn(dev torch.Device, a, b [][]float64) (fd float64, err error) {
	d, err := checkSets(a, b)
	if err != nil {
		return 0, err
	}
	defer torch.Recover(&err)
	s := torch.NewScope()
	defer s.Close()
	xa, err := matrix(s, a, d, dev)
	if err != nil {
		return 0, err
	}
	xb, err := matrix(s, b, d, dev)
	if err != nil {
		return 0, err
	}
	muA, muB := s.Mean(xa, false, 0), s.Mean(xb, false, 0)
	mean, err := s.Sum(s.Square(s.Sub(muA, muB)), false).Item()
	if err != nil {
		return 0, err
	}
	if len(a) < 2 || len(b) < 2 {
		return mean, nil
	}
	ca, trA := covariance(s, xa, muA, len(a))
	cb, trB := covariance(s, xb, muB, len(b))
	w, v := s.EigH(ca)
	root := s.Matmul(s.Mul(v, s.Sqrt(s.ClampMin(w, 0))), s.Transpose(v, 0, 1))
	inner := s.Matmul(s.Matmul(root, cb), root)
	inner = s.MulScalar(s.Add(inner, s.Transpose(inner, 0, 1)), 0.5)
	lam := s.EigvalsH(inner)
	tr, err := s.Sum(s.Sqrt(s.ClampMin(lam, 0)), false).Item()
	if err != nil {
		return 0, err
	}
	return mean + trA + trB - 2*tr, nil
}

// covariance is the covariance with N − 1 of the rows of x (mean mu) and
// its trace.
func covariance(s *torch.Scope, x, mu *torch.Tensor, n int) (*torch.Tensor, float64) {
	xc := s.Sub(x, mu)
	c := s.MulScalar(s.Matmul(s.Transpose(xc, 0, 1), xc), 1/float64(n-1))
	tr, err := s.MulScalar(s.Sum(s.Square(xc), false), 1/float64(n-1)).Item()
	if err != nil {
		torch.Failf("fvd", "covariance: %v", err)
	}
	return c, tr
}

// matrix copies rows of width d into a float64 tensor [N, d] on dev.
func matrix(s *torch.Scope, rows [][]float64, d int, dev torch.Device) (*torch.Tensor, error) {
	flat := make([]float64, 0, len(rows)*d)
	for _, r := range rows {
		flat = append(flat, r...)
	}
	t, err := torch.FromFloat64(s, flat, []int64{int64(len(rows)), int64(d)}, torch.Float64, dev)
	if err != nil {
		return nil, fmt.Errorf("fvd: %w", err)
	}
	return t, nil
}

// checkSets returns the common row length of two non-empty sets of finite
// feature rows.
func checkSets(a, b [][]float64) (int, error) {
	da, err := checkSet("a", a)
	if err != nil {
		return 0, err
	}
	db, err := checkSet("b", b)
	if err != nil {
		return 0, err
	}
	if da != db {
		return 0, fmt.Errorf("fvd: feature sets of %d and %d values a row", da, db)
	}
	return da, nil
}

func checkSet(name string, set [][]float64) (int, error) {
	if len(set) == 0 {
		return 0, fmt.Errorf("fvd: feature set %s is empty", name)
	}
	d := len(set[0])
	if d == 0 {
		return 0, fmt.Errorf("fvd: feature set %s has empty rows", name)
	}
	for i, row := range set {
		if len(row) != d {
			return 0, fmt.Errorf("fvd: feature set %s: row %d has %d values, row 0 %d", name, i, len(row), d)
		}
		for j, v := range row {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return 0, fmt.Errorf("fvd: feature set %s: row %d value %d is %v", name, i, j, v)
			}
		}
	}
	return d, nil
}
