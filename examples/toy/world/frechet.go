package world

import (
	"fmt"
	"math"
	"slices"
)

// checkSet returns the common row length of a non-empty set of finite
// feature vectors.
func checkSet(name string, set [][]float64) (int, error) {
	if len(set) == 0 {
		return 0, fmt.Errorf("world: feature set %s is empty", name)
	}
	d := len(set[0])
	if d == 0 {
		return 0, fmt.Errorf("world: feature set %s has empty vectors", name)
	}
	for i, row := range set {
		if len(row) != d {
			return 0, fmt.Errorf("world: feature set %s: row %d has %d values, row 0 has %d", name, i, len(row), d)
		}
		for j, v := range row {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return 0, fmt.Errorf("world: feature set %s: row %d value %d is %v", name, i, j, v)
			}
		}
	}
	return d, nil
}

// moments returns the mean and the sample covariance (divided by n-1; zero
// for a single row) of the rows of set, each of length d.
func moments(set [][]float64, d int) ([]float64, [][]float64) {
	mu := make([]float64, d)
	for _, row := range set {
		for j, v := range row {
			mu[j] += v
		}
	}
	n := float64(len(set))
	for j := range mu {
		mu[j] /= n
	}
	cov := newMatrix(d)
	if len(set) < 2 {
		return mu, cov
	}
	dev := make([]float64, d)
	for _, row := range set {
		for j, v := range row {
			dev[j] = v - mu[j]
		}
		for i := 0; i < d; i++ {
			for j := i; j < d; j++ {
				cov[i][j] += dev[i] * dev[j]
			}
		}
	}
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			cov[i][j] /= n - 1
			cov[j][i] = cov[i][j]
		}
	}
	return mu, cov
}

// Frechet returns the Fréchet distance between the Gaussians fitted to two
// sets of feature vectors (one row per clip):
//
//	|μa−μb|² + Tr(Σa + Σb − 2(Σa^½ Σb Σa^½)^½)
//
// with sample covariances (divided by n-1; a set of one row has zero
// covariance). The symmetric square roots come from a Jacobi eigenvalue
// decomposition, with tiny negative eigenvalues clamped to 0, and a
// negative result from rounding is clamped to 0. It fails when a set is
// empty, when the rows do not all have the same length or when a value is
// not finite.
func Frechet(a, b [][]float64) (float64, error) {
	da, err := checkSet("a", a)
	if err != nil {
		return 0, err
	}
	db, err := checkSet("b", b)
	if err != nil {
		return 0, err
	}
	if da != db {
		return 0, fmt.Errorf("world: feature sets have vectors of %d and %d values", da, db)
	}
	d := da
	muA, covA := moments(a, d)
	muB, covB := moments(b, d)

	var dist float64
	for j := 0; j < d; j++ {
		diff := muA[j] - muB[j]
		dist += diff * diff
		dist += covA[j][j] + covB[j][j]
	}
	rootA := symSqrt(covA)
	inner := mul(mul(rootA, covB), rootA)
	symmetrize(inner)
	vals, _ := jacobiEigen(inner)
	for _, v := range vals {
		dist -= 2 * math.Sqrt(max(v, 0))
	}
	return max(dist, 0), nil
}

// Standardize returns copies of sets in which every feature has had the
// reference set's mean subtracted and has been divided by the reference
// set's sample standard deviation (a feature whose reference deviation is
// below 1e-12 is only centred). The Fréchet distance is unchanged by the
// common shift, so only the scaling matters to it. It fails when ref is
// empty or not finite, or when any row has a length other than the
// reference's.
func Standardize(ref [][]float64, sets ...[][]float64) ([][][]float64, error) {
	d, err := checkSet("ref", ref)
	if err != nil {
		return nil, err
	}
	mu, cov := moments(ref, d)
	scale := make([]float64, d)
	for j := range scale {
		scale[j] = 1
		if s := math.Sqrt(cov[j][j]); s >= 1e-12 {
			scale[j] = s
		}
	}
	out := make([][][]float64, len(sets))
	for si, set := range sets {
		out[si] = make([][]float64, len(set))
		for i, row := range set {
			if len(row) != d {
				return nil, fmt.Errorf("world: set %d row %d has %d values, the reference has %d", si, i, len(row), d)
			}
			z := make([]float64, d)
			for j, v := range row {
				z[j] = (v - mu[j]) / scale[j]
			}
			out[si][i] = z
		}
	}
	return out, nil
}

// Wasserstein1 returns the 1-Wasserstein distance between the empirical
// distributions of two one-dimensional samples (uniform weights): the
// integral over u in (0, 1) of |Fa⁻¹(u) − Fb⁻¹(u)|, computed exactly on the
// union of the two quantile grids {i/len(a)} and {j/len(b)}, so samples of
// different sizes need no interpolation. It returns NaN when a sample is
// empty.
func Wasserstein1(a, b []float64) float64 {
	if len(a) == 0 || len(b) == 0 {
		return math.NaN()
	}
	sa, sb := slices.Clone(a), slices.Clone(b)
	slices.Sort(sa)
	slices.Sort(sb)
	n, m := len(sa), len(sb)
	var w, u float64
	i, j := 0, 0
	for i < n && j < m {
		// The next breakpoints are (i+1)/n and (j+1)/m; compare them
		// exactly in integers.
		ea, eb := (i+1)*m, (j+1)*n
		var next float64
		switch {
		case ea < eb:
			next = float64(i+1) / float64(n)
		default:
			next = float64(j+1) / float64(m)
		}
		w += (next - u) * math.Abs(sa[i]-sb[j])
		u = next
		if ea <= eb {
			i++
		}
		if eb <= ea {
			j++
		}
	}
	return w
}

// newMatrix returns a d×d zero matrix.
func newMatrix(d int) [][]float64 {
	m := make([][]float64, d)
	for i := range m {
		m[i] = make([]float64, d)
	}
	return m
}

// mul returns the product of two square matrices.
func mul(a, b [][]float64) [][]float64 {
	d := len(a)
	c := newMatrix(d)
	for i := 0; i < d; i++ {
		for k := 0; k < d; k++ {
			aik := a[i][k]
			if aik == 0 {
				continue
			}
			for j := 0; j < d; j++ {
				c[i][j] += aik * b[k][j]
			}
		}
	}
	return c
}

// symmetrize replaces m by (m + mᵀ)/2.
func symmetrize(m [][]float64) {
	for i := range m {
		for j := i + 1; j < len(m); j++ {
			v := (m[i][j] + m[j][i]) / 2
			m[i][j], m[j][i] = v, v
		}
	}
}

// symSqrt returns the square root V diag(√max(λ, 0)) Vᵀ of a symmetric
// positive semi-definite matrix.
func symSqrt(m [][]float64) [][]float64 {
	vals, vecs := jacobiEigen(m)
	d := len(m)
	r := newMatrix(d)
	for k := 0; k < d; k++ {
		s := math.Sqrt(max(vals[k], 0))
		if s == 0 {
			continue
		}
		for i := 0; i < d; i++ {
			vik := vecs[i][k] * s
			for j := 0; j < d; j++ {
				r[i][j] += vik * vecs[j][k]
			}
		}
	}
	return r
}

// jacobiEigen diagonalises the symmetric matrix m with cyclic Jacobi
// rotations, leaving m unchanged. It returns the eigenvalues and the matrix
// whose column k is the unit eigenvector of eigenvalue k.
func jacobiEigen(m [][]float64) ([]float64, [][]float64) {
	d := len(m)
	a := newMatrix(d)
	v := newMatrix(d)
	var norm float64
	for i := 0; i < d; i++ {
		copy(a[i], m[i])
		v[i][i] = 1
		for j := 0; j < d; j++ {
			norm += m[i][j] * m[i][j]
		}
	}
	vals := make([]float64, d)
	if norm == 0 {
		return vals, v
	}
	// Cyclic Jacobi converges quadratically on finite symmetric input, so
	// the sweep limit is only a guard.
	const maxSweeps = 100
	for sweep := 0; sweep < maxSweeps; sweep++ {
		var off float64
		for p := 0; p < d; p++ {
			for q := p + 1; q < d; q++ {
				off += a[p][q] * a[p][q]
			}
		}
		if off <= 1e-30*norm {
			break
		}
		for p := 0; p < d; p++ {
			for q := p + 1; q < d; q++ {
				apq := a[p][q]
				if apq == 0 {
					continue
				}
				// Choose the rotation that zeroes a[p][q]: t = tan φ is
				// the smaller root of t² + 2θt − 1 = 0.
				theta := (a[q][q] - a[p][p]) / (2 * apq)
				t := 1 / (math.Abs(theta) + math.Sqrt(theta*theta+1))
				if theta < 0 {
					t = -t
				}
				c := 1 / math.Sqrt(t*t+1)
				s := t * c
				for k := 0; k < d; k++ { // columns p and q of A·J
					akp, akq := a[k][p], a[k][q]
					a[k][p] = c*akp - s*akq
					a[k][q] = s*akp + c*akq
				}
				for k := 0; k < d; k++ { // rows p and q of Jᵀ·A·J
					apk, aqk := a[p][k], a[q][k]
					a[p][k] = c*apk - s*aqk
					a[q][k] = s*apk + c*aqk
				}
				a[p][q], a[q][p] = 0, 0
				for k := 0; k < d; k++ { // V·J
					vkp, vkq := v[k][p], v[k][q]
					v[k][p] = c*vkp - s*vkq
					v[k][q] = s*vkp + c*vkq
				}
			}
		}
	}
	for i := range vals {
		vals[i] = a[i][i]
	}
	return vals, v
}
