package world

import (
	"fmt"
	"math"
	"slices"

	"github.com/onestepvideo/osv-go/osv/fvd"
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
// sets of feature vectors (one row per clip), as osv/fvd computes it for
// FVD (fvd.Distance: sample covariances divided by n-1, the matrix square
// root through libtorch's linalg in float64; sets of one row compare their
// means alone), with a negative result from rounding clamped to 0. It
// fails when a set is empty, when the rows do not all have the same length
// or when a value is not finite.
func Frechet(a, b [][]float64) (float64, error) {
	d, err := fvd.Distance(a, b)
	if err != nil {
		return 0, fmt.Errorf("world: %w", err)
	}
	return max(d, 0), nil
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

// FeatureTerms returns, for each feature, the Fréchet distance between the
// one-dimensional Gaussians fitted to that feature alone in a and in b:
// (μa − μb)² + (σa − σb)², with sample deviations (n − 1). Where the
// features are uncorrelated within each set, Frechet(a, b) is their sum;
// otherwise it says which features a distance comes from, not how much
// exactly. Given sets standardised by one of them (Standardize), it shows
// the features whose deviation from the reference is large against the
// reference's own spread. It fails as Frechet does on bad sets.
func FeatureTerms(a, b [][]float64) ([]float64, error) {
	d, err := checkSet("a", a)
	if err != nil {
		return nil, err
	}
	db, err := checkSet("b", b)
	if err != nil {
		return nil, err
	}
	if db != d {
		return nil, fmt.Errorf("world: feature sets have %d and %d values a row", d, db)
	}
	ma, ca := moments(a, d)
	mb, cb := moments(b, d)
	out := make([]float64, d)
	for j := range out {
		gap, dev := ma[j]-mb[j], math.Sqrt(ca[j][j])-math.Sqrt(cb[j][j])
		out[j] = gap*gap + dev*dev
	}
	return out, nil
}
