package fvd

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/onestepvideo/osv-go/osv/data"
	"github.com/onestepvideo/osv-go/torch/safetensors"
)

// FileOptions say how FileFeatures reads videos.
type FileOptions struct {
	data.FrameOptions     // which frames (16 frames, the first ones, at the video's own rate)
	Workers           int // videos decoded at once (4)
	// Report is told about each skipped video (nothing when nil).
	Report func(path string, err error)
	// Progress is told after each batch how many videos are done, of
	// how many, and how many of them were skipped (nothing when nil).
	Progress func(done, skipped, total int)
}

// Set is the features of a set of videos.
type Set struct {
	Features [][]float64 // one row per video read, in order
	Paths    []string    // the videos the rows come from
	Skipped  int         // unreadable or too short videos, left out
}

// FileFeatures decodes the videos (osv/data's ffmpeg decoding at their
// own size, several at a time) and runs the detector on them batch by
// batch. A video that cannot be read or is shorter than the frames asked
// for is skipped, reported and counted, never fatal; a missing ffmpeg, a
// cancelled ctx and a detector failure end it with an error.
func (d *Detector) FileFeatures(ctx context.Context, paths []string, o FileOptions) (*Set, error) {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	fo := o.FrameOptions
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	clips, stats, wait := data.Stream(ctx, paths, data.StreamOptions{
		Workers:  o.Workers,
		Prefetch: max(2*o.Workers, d.batch),
		Decode: func(ctx context.Context, p string) (*data.Clip, error) {
			return data.DecodeFrames(ctx, p, fo)
		},
		Report: o.Report,
	})
	set := &Set{}
	var batch []*data.Clip
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		rows, err := d.ClipFeatures(batch)
		if err != nil {
			return err
		}
		set.Features = append(set.Features, rows...)
		for _, c := range batch {
			set.Paths = append(set.Paths, c.Path)
		}
		batch = batch[:0]
		if o.Progress != nil {
			o.Progress(len(set.Paths)+int(stats.Skipped.Load()), int(stats.Skipped.Load()), len(paths))
		}
		return nil
	}
	var ferr error
	for c := range clips {
		if ferr != nil {
			continue // drain after a failure
		}
		batch = append(batch, c)
		if len(batch) == d.batch {
			if ferr = flush(); ferr != nil {
				cancel()
			}
		}
	}
	if ferr == nil {
		ferr = flush()
	}
	werr := wait()
	if ferr != nil {
		return nil, ferr
	}
	if werr != nil {
		return nil, werr
	}
	set.Skipped = int(stats.Skipped.Load())
	return set, nil
}

// SaveFeatures writes a set to a safetensors file: its features as
// "features" [N, D] float64, its paths and skipped count, and meta (what
// the caller wants to recognise the file by: the detector, the frame
// options) in the metadata.
func SaveFeatures(path string, set *Set, meta map[string]string) error {
	if set == nil || len(set.Features) == 0 {
		return fmt.Errorf("fvd: %s: no features to save", path)
	}
	d, err := checkSet("to save", set.Features)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	buf := make([]byte, 0, 8*d*len(set.Features))
	for _, row := range set.Features {
		for _, v := range row {
			buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
		}
	}
	md := make(map[string]string, len(meta)+2)
	for k, v := range meta {
		md[k] = v
	}
	paths, err := json.Marshal(set.Paths)
	if err != nil {
		return err
	}
	md["paths"] = string(paths)
	md["skipped"] = strconv.Itoa(set.Skipped)
	return safetensors.Write(path, []safetensors.Tensor{{Name: "features", DType: "F64", Shape: []int64{int64(len(set.Features)), int64(d)}, Data: buf}}, md)
}

// LoadFeatures reads a set that SaveFeatures wrote, with the file's
// metadata (SaveFeatures' meta among it). A file without a float "features"
// [N, D] tensor is an error naming it.
func LoadFeatures(path string) (*Set, map[string]string, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	info, ok := f.Info("features")
	if !ok || len(info.Shape) != 2 || info.Shape[0] < 1 || info.Shape[1] < 1 {
		return nil, nil, fmt.Errorf("fvd: %s: no \"features\" tensor [N, D]", path)
	}
	b, err := f.Bytes("features")
	if err != nil {
		return nil, nil, err
	}
	n, d := int(info.Shape[0]), int(info.Shape[1])
	set := &Set{Features: make([][]float64, n)}
	for i := range set.Features {
		row := make([]float64, d)
		for j := range row {
			k := i*d + j
			switch info.DType {
			case "F64":
				row[j] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*k:]))
			case "F32":
				row[j] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*k:])))
			default:
				return nil, nil, fmt.Errorf("fvd: %s: features of dtype %s: want F64 or F32", path, info.DType)
			}
		}
		set.Features[i] = row
	}
	meta := f.Header.Metadata
	if p, ok := meta["paths"]; ok {
		if err := json.Unmarshal([]byte(p), &set.Paths); err != nil {
			return nil, nil, fmt.Errorf("fvd: %s: metadata paths: %w", path, err)
		}
		if len(set.Paths) != n {
			return nil, nil, fmt.Errorf("fvd: %s: %d paths for %d feature rows", path, len(set.Paths), n)
		}
	}
	if s, ok := meta["skipped"]; ok {
		if set.Skipped, err = strconv.Atoi(s); err != nil {
			return nil, nil, fmt.Errorf("fvd: %s: metadata skipped: %w", path, err)
		}
	}
	return set, meta, nil
}
