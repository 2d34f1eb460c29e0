// Command fvd prints the Fréchet Video Distance between two sets of videos,
// as StyleGAN-V's FVD code computes it, with the I3D TorchScript detector
// (i3d_torchscript.pt) the user already has.
//
//	fvd -detector i3d_torchscript.pt -real DIR|CSV|FEATURES -fake DIR|CSV|FEATURES
//	    [-frames 16] [-fps 0] [-spread] [-device cuda] [-batch 16] [-workers 4]
//	    [-features DIR] [-video-dir DIR]
//
// A set is a folder of videos, an OpenVid-1M CSV (a "video" column; its
// names relative to -video-dir, the CSV's folder by default) or a features
// file that an earlier run wrote. Each clip is the first -frames frames of
// its video (resampled to -fps when it is set), or -frames frames evenly
// spaced over the whole video with -spread, at the video's own size; the
// detector's preprocessing resizes them. Unreadable videos and videos
// shorter than that are skipped and counted. The features of each set of
// videos go to -features (a folder, ./fvd-features by default) as
// safetensors, named after the set and keyed by the detector, the frame
// options and the videos' names, sizes and times, so that a second run
// against another set reuses them.
//
//	fvd -detector FILE -bench 2048 [-frames 16] [-bench-size 320x240] [-device cuda] [-batch 16]
//
// times Features and Distance on that many synthetic clips (uniform random
// frames of the given size drawn on the device, 32 distinct clips for each
// half; the distance between the two halves) after one warm-up batch.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/onestepvideo/osv-go/osv/data"
	"github.com/onestepvideo/osv-go/osv/fvd"
	"github.com/onestepvideo/osv-go/torch"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "fvd:", err)
		os.Exit(1)
	}
}

type flags struct {
	detector, real, fake, device, features, videoDir, benchSize string
	frames, batch, workers, bench                               int
	fps                                                         float64
	spread                                                      bool
}

func parse(args []string, stderr io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("fvd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.detector, "detector", "", "the I3D TorchScript file (StyleGAN-V's i3d_torchscript.pt)")
	fs.StringVar(&f.real, "real", "", "real videos: a folder, an OpenVid-1M CSV or a features file of an earlier run")
	fs.StringVar(&f.fake, "fake", "", "generated videos: a folder, a CSV or a features file")
	fs.StringVar(&f.videoDir, "video-dir", "", "where a CSV's videos are (default: the CSV's folder)")
	fs.IntVar(&f.frames, "frames", 16, "frames per clip")
	fs.Float64Var(&f.fps, "fps", 0, "resample videos to this rate before taking the first frames (0: their own frames)")
	fs.BoolVar(&f.spread, "spread", false, "take the frames evenly spaced over each whole video instead of the first ones")
	fs.StringVar(&f.device, "device", "cpu", "cpu, cuda or cuda:N")
	fs.IntVar(&f.batch, "batch", 16, "clips per detector call")
	fs.IntVar(&f.workers, "workers", 4, "videos decoded at once")
	fs.StringVar(&f.features, "features", "fvd-features", "folder for the sets' feature files")
	fs.IntVar(&f.bench, "bench", 0, "time Features and Distance on this many synthetic clips instead")
	fs.StringVar(&f.benchSize, "bench-size", "320x240", "the synthetic clips' WIDTHxHEIGHT")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	switch {
	case fs.NArg() > 0:
		return f, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case f.detector == "":
		return f, fmt.Errorf("-detector is required (see -help)")
	case f.bench == 0 && (f.real == "" || f.fake == ""):
		return f, fmt.Errorf("-real and -fake are required (see -help)")
	case f.frames < 1 || f.batch < 1 || f.workers < 1 || f.bench < 0 || f.fps < 0:
		return f, fmt.Errorf("-frames %d, -batch %d, -workers %d, -bench %d, -fps %g: want positive counts and a rate ≥ 0", f.frames, f.batch, f.workers, f.bench, f.fps)
	case f.spread && f.fps > 0:
		return f, fmt.Errorf("-spread takes the videos' own frames: leave -fps at 0")
	}
	return f, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parse(args, stderr)
	if err != nil {
		return err
	}
	det, err := fvd.LoadDetector(f.detector, fvd.WithDevice(f.device), fvd.WithBatchSize(f.batch))
	if err != nil {
		return err
	}
	defer det.Close()
	if f.bench > 0 {
		return bench(det, f, stdout)
	}
	detKey, err := fileKey(f.detector)
	if err != nil {
		return err
	}
	real, err := features(ctx, det, "real", f.real, f, detKey, stderr)
	if err != nil {
		return err
	}
	fake, err := features(ctx, det, "fake", f.fake, f, detKey, stderr)
	if err != nil {
		return err
	}
	if len(real.Features[0]) != len(fake.Features[0]) {
		return fmt.Errorf("real features have %d values, fake %d: not from one detector", len(real.Features[0]), len(fake.Features[0]))
	}
	score, err := fvd.Distance(fake.Features, real.Features)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "real: %d clips (%d skipped), fake: %d clips (%d skipped)\n", len(real.Features), real.Skipped, len(fake.Features), fake.Skipped)
	fmt.Fprintf(stdout, "FVD %.6g\n", score)
	return nil
}

// features reads a set's features from a features file, from the cache,
// or from its videos (then writing the cache file).
func features(ctx context.Context, det *fvd.Detector, role, src string, f flags, detKey string, stderr io.Writer) (*fvd.Set, error) {
	if strings.HasSuffix(strings.ToLower(src), ".safetensors") {
		set, meta, err := fvd.LoadFeatures(src)
		if err != nil {
			return nil, err
		}
		if fr, ok := meta["frames"]; ok && fr != strconv.Itoa(f.frames) {
			fmt.Fprintf(stderr, "%s: warning: %s holds features of %s-frame clips, -frames is %d\n", role, src, fr, f.frames)
		}
		fmt.Fprintf(stderr, "%s: %d clips' features from %s\n", role, len(set.Features), src)
		return set, nil
	}
	paths, err := data.List(src, f.videoDir)
	if err != nil {
		return nil, err
	}
	meta := map[string]string{
		"detector": f.detector, "frames": strconv.Itoa(f.frames), "fps": strconv.FormatFloat(f.fps, 'g', -1, 64),
		"spread": strconv.FormatBool(f.spread), "source": src,
	}
	key, err := setKey(detKey, meta, paths)
	if err != nil {
		return nil, err
	}
	name := strings.TrimSuffix(filepath.Base(filepath.Clean(src)), filepath.Ext(src))
	cache := filepath.Join(f.features, name+"-"+key[:16]+".safetensors")
	if set, _, err := fvd.LoadFeatures(cache); err == nil {
		fmt.Fprintf(stderr, "%s: reused the features of %d clips from %s\n", role, len(set.Features), cache)
		return set, nil
	}
	start, last := time.Now(), time.Time{}
	set, err := det.FileFeatures(ctx, paths, fvd.FileOptions{
		FrameOptions: data.FrameOptions{Frames: f.frames, FPS: f.fps, Spread: f.spread},
		Workers:      f.workers,
		Report:       func(p string, err error) { fmt.Fprintf(stderr, "%s: skipped %v\n", role, err) },
		Progress: func(done, skipped, total int) {
			if time.Since(last) < 2*time.Second && done < total {
				return
			}
			last = time.Now()
			rate := float64(done-skipped) / time.Since(start).Seconds()
			fmt.Fprintf(stderr, "%s: %d/%d videos (%d skipped), %.1f clips/s\n", role, done, total, skipped, rate)
		},
	})
	if err != nil {
		return nil, err
	}
	if len(set.Features) == 0 {
		return nil, fmt.Errorf("%s: no usable video in %s (%d skipped)", role, src, set.Skipped)
	}
	if err := os.MkdirAll(f.features, 0o755); err != nil {
		return nil, err
	}
	if err := fvd.SaveFeatures(cache, set, meta); err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "%s: features of %d clips (%d skipped) written to %s\n", role, len(set.Features), set.Skipped, cache)
	return set, nil
}

// fileKey identifies a file by its contents.
func fileKey(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// setKey identifies a set's features: the detector, the options, and each
// video's name, size and modification time.
func setKey(detKey string, meta map[string]string, paths []string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "detector %s\nframes %s fps %s spread %s\n", detKey, meta["frames"], meta["fps"], meta["spread"])
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		if st, err := os.Stat(p); err == nil {
			fmt.Fprintf(h, "%s %d %d\n", abs, st.Size(), st.ModTime().UnixNano())
		} else {
			fmt.Fprintf(h, "%s missing\n", abs)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// bench times Features and Distance on synthetic clips.
func bench(det *fvd.Detector, f flags, stdout io.Writer) (err error) {
	defer torch.Recover(&err)
	w, h, err := parseSize(f.benchSize)
	if err != nil {
		return err
	}
	dev := det.Device()
	s := torch.NewScope()
	defer s.Close()
	g, err := torch.NewGenerator(1)
	if err != nil {
		return err
	}
	defer g.Close()
	// Two pools of distinct clips on the device, the second half of the
	// clips taking theirs from the second, dimmer pool.
	pools := make([][]*torch.Tensor, 2)
	for p := range pools {
		pools[p] = make([]*torch.Tensor, min(f.bench, 32))
		for i := range pools[p] {
			x, err := g.Rand(s, []int64{int64(f.frames), 3, int64(h), int64(w)}, torch.Float32, dev)
			if err != nil {
				return err
			}
			pools[p][i] = s.MulScalar(x, 1-0.2*float64(p))
		}
	}
	clips := make([]*torch.Tensor, f.bench)
	for i := range clips {
		pool := pools[2*i/max(f.bench, 2)]
		clips[i] = pool[i%len(pool)]
	}
	if _, err := det.Features(clips[:min(f.batch, len(clips))]); err != nil { // warm-up
		return err
	}
	t0 := time.Now()
	feats, err := det.Features(clips)
	if err != nil {
		return err
	}
	tf := time.Since(t0)
	t1 := time.Now()
	half := len(feats) / 2
	score, err := fvd.Distance(feats[:max(half, 1)], feats[half:])
	if err != nil {
		return err
	}
	td := time.Since(t1)
	fmt.Fprintf(stdout, "bench: %d clips of %d frames at %dx%d on %s, batch %d, detector %s\n", f.bench, f.frames, w, h, dev, f.batch, det.Path())
	fmt.Fprintf(stdout, "  Features  %8.3f s  %8.1f clips/s\n", tf.Seconds(), float64(f.bench)/tf.Seconds())
	fmt.Fprintf(stdout, "  Distance  %8.3f s  (%d against %d rows of %d; FD %.4g)\n", td.Seconds(), max(half, 1), len(feats)-half, len(feats[0]), score)
	fmt.Fprintf(stdout, "  total     %8.3f s  %8.1f clips/s\n", (tf + td).Seconds(), float64(f.bench)/(tf+td).Seconds())
	return nil
}

func parseSize(s string) (w, h int, err error) {
	a, b, ok := strings.Cut(strings.ToLower(s), "x")
	if ok {
		w, err = strconv.Atoi(a)
		if err == nil {
			h, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil || w < 1 || h < 1 {
		return 0, 0, fmt.Errorf("-bench-size %q: want WIDTHxHEIGHT", s)
	}
	return w, h, nil
}
